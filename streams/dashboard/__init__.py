"""The worker dashboard's page, script and style, served by streams.web as package data."""
