"""Airflow hooks: read a connection, build the typed settings, hand out an API client."""
