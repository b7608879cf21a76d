"""Curating a dataset with an audit: decisions people already have come in (`importers`), images go out with a
dataset card (`export`: a category, a difficulty-balanced draw, the label review list), and a reviewed relabel
file is applied (`relabel`)."""
