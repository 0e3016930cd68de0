"""An SMTP relay for the integration tests: aiosmtpd into a Maildir, STARTTLS and AUTH.

    python smtp.py PORT MAILDIR [--tls CERT KEY] [--auth USER:PASS]

With --tls, STARTTLS is required before MAIL FROM and AUTH; with --auth, a login is required.
"""
import argparse
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("maildir")
parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
parser.add_argument("--auth", metavar="USER:PASS")
args = parser.parse_args()
options = {}
if args.tls:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*args.tls)
    options.update(tls_context=context, require_starttls=True)
if args.auth:
    user, password = args.auth.encode().split(b":", 1)

    def authenticate(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (user, password)
        # handled=False makes the server answer 535 to a wrong password; with the default the
        # client would wait for a reply until its timeout.
        return AuthResult(success=ok, handled=False)

    options.update(auth_required=True, auth_require_tls=bool(args.tls), authenticator=authenticate)
# Large attachments: the default limit is 32 MiB of DATA.
controller = Controller(Mailbox(args.maildir), hostname="127.0.0.1", port=args.port,
                        data_size_limit=64 * 2**20, **options)
controller.start()
print("READY", flush=True)
stop = threading.Event()
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda *_: stop.set())
stop.wait()
controller.stop()
