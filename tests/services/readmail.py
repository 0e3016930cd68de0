"""Reads the messages of a Maildir addressed to one recipient, for the integration tests.

    python3 readmail.py MAILDIR RECIPIENT OUTDIR

Prints a JSON list, one object per message: {"subject", "from", "to", "body", "attachments":
[{"name", "content_type", "file"}]}, with each attachment decoded into OUTDIR/N/NAME.
"""
import json
import mailbox
import os
import sys
from email import policy
from email.parser import BytesParser

maildir, recipient, outdir = sys.argv[1:4]
found = []
box = mailbox.Maildir(maildir, factory=None, create=False)
for key in sorted(box.keys()):
    with box.get_file(key) as f:
        message = BytesParser(policy=policy.default).parse(f)
    if recipient not in str(message.get("To", "")):
        continue
    n = len(found)
    entry = {
        "subject": str(message["Subject"]),
        "from": str(message["From"]),
        "to": str(message["To"]),
        "body": "",
        "attachments": [],
    }
    for part in message.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        if name is None:
            entry["body"] += part.get_content()
            continue
        os.makedirs(os.path.join(outdir, str(n)), exist_ok=True)
        path = os.path.join(outdir, str(n), name)
        with open(path, "wb") as out:
            out.write(part.get_payload(decode=True))
        entry["attachments"].append(
            {"name": name, "content_type": part.get_content_type(), "file": path})
    found.append(entry)
print(json.dumps(found))
