"""Full-text search over the catalog: what is indexed of a dataset, and how a page is found."""
