"""Reads paybridge's /api/v1/stream as a browser's EventSource would, and prints the frames
it gets until one of the wanted type arrives (exit 0) or TIMEOUT seconds pass (exit 1).
usage: sse_reader.py URL TOKEN WANTED_EVENT TIMEOUT [CONNECTED_FILE]
CONNECTED_FILE is created once the stream's first line arrived (the test changes things after)."""
import sys
import time
import urllib.request

url, token, wanted, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
connected = sys.argv[5] if len(sys.argv) > 5 else None
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token, "Accept": "text/event-stream"})
deadline = time.time() + timeout
with urllib.request.urlopen(request, timeout=timeout) as stream:
    print("content-type:", stream.headers.get("Content-Type"), flush=True)
    event = None
    while time.time() < deadline:
        line = stream.readline().decode("utf-8")
        if not line:
            break
        line = line.rstrip("\n")
        if connected:
            open(connected, "w").close()
            connected = None
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event:
            print(event, line[6:], flush=True)
            if event == wanted:
                sys.exit(0)
        elif line == "":
            event = None
sys.exit(1)
