"""EC2's volume calls for the shop's data volume, and the disk behind it.

Answers DescribeVolumes, AttachVolume and DescribeInstances (an instance's
state only; AWS Query protocol, as the AWS CLI sends them) for the volumes
and instances the test creates, with EBS's rules where the fleet depends on
them: a volume attaches only to a running instance of its own zone
(InvalidVolume.ZoneMismatch), only while no instance holds it (VolumeInUse),
and when its instance is terminated it is detached and available again with
every byte it held; the instance's root disk is gone, this disk is not. An
instance can be `shutting-down` first, still holding its volumes, for as
long as the test says (the group may launch the replacement meanwhile).

Each volume is a file holding a block device's bytes, blank when created (as
a new EBS volume is). Attaching it makes it a loop device and, a moment
later, hands that device to the instance's own mount namespace as
/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_<id without the dash>, the
name a Nitro instance sees; only that instance has the name. Detaching
releases the loop device; the next attachment waits until no loop device
holds the file (a filesystem still mounted somewhere is still "detaching").

    ebs.py HOST PORT DIR

Control API (for the test only):
    PUT  /volumes/<id>              {"zone", "size_mb"}: a blank volume (the template's DataVolume)
    PUT  /instances/<id>            {"zone", "mount_ns_pid_file"}: a running instance
    POST /instances/<id>/shutting-down   being terminated: it holds its volumes still
    POST /instances/<id>/terminate       gone: its volumes are detached
    GET  /volumes                   every volume's state (JSON)
"""
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

HOST, PORT, DIR = sys.argv[1], int(sys.argv[2]), sys.argv[3]
NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
LOCK = threading.Lock()
VOLUMES = {}    # id -> {"zone", "file", "created", "instance", "device", "state", "loop"}
INSTANCES = {}  # id -> {"zone", "mount_ns_pid_file", "state"}
STATE_CODES = {"running": 16, "shutting-down": 32, "terminated": 48}


class Refused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def by_id_name(volume_id):
    return "nvme-Amazon_Elastic_Block_Store_" + volume_id.replace("-", "")


def loop_devices_of(path):
    out = subprocess.run(["losetup", "-j", path], capture_output=True, text=True).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line]


def hand_device(volume_id, instance):
    """The attachment completes: the device appears in the instance's namespace."""
    time.sleep(1)
    with LOCK:
        volume = VOLUMES[volume_id]
        if volume["instance"] != instance:
            return
        loop = subprocess.run(["losetup", "--find", "--show", volume["file"]],
                              capture_output=True, text=True, check=True).stdout.strip()
        pid = open(INSTANCES[instance]["mount_ns_pid_file"]).read().strip()
        subprocess.run(["nsenter", f"--mount=/proc/{pid}/ns/mnt", "--", "sh", "-c",
                        'mkdir -p /dev/disk/by-id && ln -sfn "$1" "/dev/disk/by-id/$2"', "_",
                        loop, by_id_name(volume_id)], check=True)
        volume.update(loop=loop, state="attached")


def attach(params):
    volume_id, instance = params.get("VolumeId"), params.get("InstanceId")
    with LOCK:
        volume = VOLUMES.get(volume_id)
        if volume is None:
            raise Refused("InvalidVolume.NotFound", f"The volume '{volume_id}' does not exist.")
        host = INSTANCES.get(instance)
        if host is None or host["state"] != "running":
            raise Refused("IncorrectInstanceState", f"The instance '{instance}' is not 'running'.")
        if volume["instance"] is not None:
            raise Refused("VolumeInUse", f"{volume_id} is already attached to an instance")
        if host["zone"] != volume["zone"]:
            raise Refused("InvalidVolume.ZoneMismatch",
                          f"The volume '{volume_id}' is not in the same availability zone as instance '{instance}'")
        if loop_devices_of(volume["file"]):
            raise Refused("IncorrectState", f"The volume '{volume_id}' is still detaching.")
        volume.update(instance=instance, device=params.get("Device"), state="attaching", attached_at=time.time())
    threading.Thread(target=hand_device, args=(volume_id, instance), daemon=True).start()
    return (f"<volumeId>{volume_id}</volumeId><instanceId>{instance}</instanceId>"
            f"<device>{params.get('Device')}</device><status>attaching</status>"
            f"<attachTime>{iso(time.time())}</attachTime>")


def describe(params):
    wanted = [v for k, v in sorted(params.items()) if k.startswith("VolumeId.")]
    items = []
    with LOCK:
        for volume_id in wanted or sorted(VOLUMES):
            volume = VOLUMES.get(volume_id)
            if volume is None:
                raise Refused("InvalidVolume.NotFound", f"The volume '{volume_id}' does not exist.")
            attachment = ""
            if volume["instance"] is not None:
                attachment = (f"<item><volumeId>{volume_id}</volumeId><instanceId>{volume['instance']}</instanceId>"
                              f"<device>{volume['device']}</device><status>{volume['state']}</status>"
                              f"<attachTime>{iso(volume['attached_at'])}</attachTime>"
                              "<deleteOnTermination>false</deleteOnTermination></item>")
            status = "available" if volume["instance"] is None else "in-use"
            items.append(f"<item><volumeId>{volume_id}</volumeId><size>{volume['size_gib']}</size><snapshotId/>"
                         f"<availabilityZone>{volume['zone']}</availabilityZone><status>{status}</status>"
                         f"<createTime>{iso(volume['created'])}</createTime><attachmentSet>{attachment}</attachmentSet>"
                         "<volumeType>gp3</volumeType><encrypted>true</encrypted>"
                         "<multiAttachEnabled>false</multiAttachEnabled></item>")
    return f"<volumeSet>{''.join(items)}</volumeSet>"


def describe_instances(params):
    wanted = [v for k, v in sorted(params.items()) if k.startswith("InstanceId.")]
    items = []
    with LOCK:
        for instance in wanted:
            if instance not in INSTANCES:
                raise Refused("InvalidInstanceID.NotFound", f"The instance ID '{instance}' does not exist")
            state = INSTANCES[instance]["state"]
            items.append(f"<item><instanceId>{instance}</instanceId><instanceState><code>{STATE_CODES[state]}</code>"
                         f"<name>{state}</name></instanceState></item>")
    return (f"<reservationSet><item><reservationId>r-stub</reservationId><ownerId>123456789012</ownerId>"
            f"<groupSet/><instancesSet>{''.join(items)}</instancesSet></item></reservationSet>")


def shutting_down(instance):
    with LOCK:
        INSTANCES.setdefault(instance, {"zone": None, "mount_ns_pid_file": None})["state"] = "shutting-down"


def terminate(instance):
    """EC2 detaches a terminated instance's volumes, which keep their data."""
    with LOCK:
        INSTANCES.setdefault(instance, {"zone": None, "mount_ns_pid_file": None})["state"] = "terminated"
        for volume in VOLUMES.values():
            if volume["instance"] == instance:
                for loop in loop_devices_of(volume["file"]):
                    subprocess.run(["losetup", "-d", loop], capture_output=True)
                volume.update(instance=None, device=None, state="available", loop=None)


ACTIONS = {"AttachVolume": attach, "DescribeVolumes": describe, "DescribeInstances": describe_instances}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, body, content_type="text/xml"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()

    def do_POST(self):
        control = {"shutting-down": shutting_down, "terminate": terminate}
        parts = self.path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "instances" and parts[2] in control:
            self.body()
            control[parts[2]](parts[1])
            return self.reply(200, "{}", "application/json")
        params = {k: v[0] for k, v in parse_qs(self.body()).items()}
        action = params.get("Action", "")
        try:
            if action not in ACTIONS:
                raise Refused("InvalidAction", f"{action} is not stubbed")
            result = ACTIONS[action](params)
        except Refused as refused:
            return self.reply(400, f"<Response><Errors><Error><Code>{refused.code}</Code>"
                                   f"<Message>{refused}</Message></Error></Errors>"
                                   "<RequestID>stub</RequestID></Response>")
        self.reply(200, f'<{action}Response xmlns="{NS}"><requestId>stub</requestId>{result}</{action}Response>')

    def do_PUT(self):
        kind, _, name = self.path.strip("/").partition("/")
        spec = json.loads(self.body() or "{}")
        with LOCK:
            if kind == "volumes":
                path = os.path.join(DIR, name + ".img")
                with open(path, "wb") as f:
                    f.truncate(spec["size_mb"] * 1024 * 1024)
                VOLUMES[name] = {"zone": spec["zone"], "file": path, "created": time.time(), "instance": None,
                                 "device": None, "state": "available", "loop": None,
                                 "size_gib": max(1, spec["size_mb"] // 1024)}
            elif kind == "instances":
                INSTANCES[name] = {"zone": spec["zone"], "mount_ns_pid_file": spec["mount_ns_pid_file"],
                                   "state": "running"}
            else:
                return self.reply(404, "{}", "application/json")
        self.reply(200, "{}", "application/json")

    def do_GET(self):
        with LOCK:
            state = {k: {f: v[f] for f in ("zone", "instance", "state", "loop")} for k, v in VOLUMES.items()}
        self.reply(200, json.dumps(state), "application/json")

    def log_message(self, *args):
        pass


os.makedirs(DIR, exist_ok=True)
ThreadingHTTPServer((HOST, PORT), Handler).serve_forever()
