"""The latest quality score of each dataset, as the quality service announces it, for the catalog to show."""
