"""The needs board: what scenario builders, departments and residents want of the city's data, and
how the owning departments answer."""
