"""The city's fields of data (domains) and the departments that publish in them."""
