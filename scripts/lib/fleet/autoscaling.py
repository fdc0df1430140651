"""A recording stand-in for the Auto Scaling calls moto lacks, and for
CloudFormation's wait condition handle.

Answers RecordLifecycleActionHeartbeat, CompleteLifecycleAction and
SetInstanceHealth (AWS Query protocol, as the SDK sends them) and appends
each call as one JSON line to CALLS_FILE, for the test to check (and, for
SetInstanceHealth and a launch hook's completion, to act on as the group
would). As the group does, it refuses a second CompleteLifecycleAction for
the same instance and hook: that action is no longer pending (an agent
restarted after its node went in service). Any other action is refused. A PUT to /wait/NAME is a wait condition signal (what the founding
manager's user data sends to the handle's presigned URL): recorded as
{"Action": "WaitConditionSignal", "Handle": NAME, "Signal": {...}}.

    autoscaling.py HOST PORT CALLS_FILE
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

HOST, PORT, CALLS = sys.argv[1], int(sys.argv[2]), sys.argv[3]
KNOWN = {"RecordLifecycleActionHeartbeat", "CompleteLifecycleAction", "SetInstanceHealth"}
NS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
COMPLETED = set()  # (instance, hook) whose action is no longer pending


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        params = {k: v[0] for k, v in form.items()}
        action = params.get("Action", "")
        if action not in KNOWN:
            return self.reply(400, f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type>'
                                   f"<Code>InvalidAction</Code><Message>{action} is not stubbed</Message>"
                                   "</Error><RequestId>stub</RequestId></ErrorResponse>")
        if action == "CompleteLifecycleAction":
            key = (params.get("InstanceId"), params.get("LifecycleHookName"))
            if key in COMPLETED:
                return self.reply(400, f'<ErrorResponse xmlns="{NS}"><Error><Type>Sender</Type>'
                                       "<Code>ValidationError</Code><Message>No active Lifecycle Action found "
                                       f"with instance ID {key[0]}</Message></Error>"
                                       "<RequestId>stub</RequestId></ErrorResponse>")
            COMPLETED.add(key)
        params["at"] = time.time()
        with open(CALLS, "a") as f:
            f.write(json.dumps(params) + "\n")
        self.reply(200, f'<{action}Response xmlns="{NS}"><{action}Result/>'
                        f"<ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></{action}Response>")

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if not self.path.startswith("/wait/"):
            return self.reply(404, "<Error>no such handle</Error>")
        try:
            signal = json.loads(body)
        except ValueError:
            return self.reply(400, "<Error>a wait condition signal is a JSON document</Error>")
        with open(CALLS, "a") as f:
            f.write(json.dumps({"Action": "WaitConditionSignal", "Handle": self.path[len("/wait/"):],
                                "Signal": signal, "at": time.time()}) + "\n")
        self.reply(200, "")

    def log_message(self, *args):
        pass


ThreadingHTTPServer((HOST, PORT), Handler).serve_forever()
