"""Creates a blob container on Azurite with a Shared Key signed request (stdlib only).

usage: azure_container.py ENDPOINT ACCOUNT KEY CONTAINER   (an existing container is fine)
"""
import base64, hashlib, hmac, sys, urllib.error, urllib.parse, urllib.request
from email.utils import formatdate

endpoint, account, key, container = sys.argv[1:5]
url = f"{endpoint}/{container}?restype=container"
date, version = formatdate(usegmt=True), "2021-08-06"
path = urllib.parse.urlparse(url).path
string_to_sign = "\n".join(
    ["PUT"] + [""] * 11
    + [f"x-ms-date:{date}", f"x-ms-version:{version}", f"/{account}{path}", "restype:container"]
)
signature = base64.b64encode(
    hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()
).decode()
request = urllib.request.Request(url, method="PUT", headers={
    "x-ms-date": date, "x-ms-version": version, "Content-Length": "0",
    "Authorization": f"SharedKey {account}:{signature}",
})
try:
    urllib.request.urlopen(request, timeout=10)
except urllib.error.HTTPError as e:
    if e.code != 409:  # 409: the container exists already
        sys.exit(f"cannot create container {container}: {e.code} {e.read().decode()[:300]}")
