"""The city's scenario programme: opportunity lists (机会清单) of openings, the organisations that
apply, and their proposals (揭榜挂帅 / 赛马), from which the selected ones become scenarios."""
