"""The sync engine: matching, merging and writing records between an invoicing platform and Clientify.

Pure Python (no Airflow imports): the DAGs drive it one step per task, and tests drive it directly.
"""
