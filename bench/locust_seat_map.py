"""Locust users for bench/client_cost.py: each GETs one path as fast as it is answered (no wait between).

LOCUST_PATH is the path; with LOCUST_JSON=1 the answer is parsed, as a buyer's client parses the seat map;
LOCUST_API_KEY goes in X-API-Key. Runs under Locust's own interpreter (bench/requirements-locust.txt).
"""

import os

from locust import FastHttpUser, constant, task

PATH = os.environ["LOCUST_PATH"]
PARSE_JSON = os.environ.get("LOCUST_JSON") == "1"
HEADERS = {"X-API-Key": os.environ.get("LOCUST_API_KEY", "")}


class Reader(FastHttpUser):
    wait_time = constant(0)

    @task
    def read(self):
        response = self.client.get(PATH, headers=HEADERS)
        if PARSE_JSON:
            response.json()
