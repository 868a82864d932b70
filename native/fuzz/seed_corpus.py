"""Seed the fuzz corpus directory with every spec of the shared test vectors."""
import hashlib
import json
import os
import sys


def main() -> None:
    vectors, corpus = sys.argv[1], sys.argv[2]
    os.makedirs(corpus, exist_ok=True)
    with open(vectors, encoding="utf-8") as f:
        doc = json.load(f)
    for case in doc["valid"] + doc["invalid"]:
        data = case["spec"].encode("utf-8", "surrogateescape")
        name = os.path.join(corpus, "seed-" + hashlib.sha1(data).hexdigest())
        if not os.path.exists(name):
            with open(name, "wb") as out:
                out.write(data)


if __name__ == "__main__":
    main()
