"""A pass-through after-queue content filter, as in Postfix's
FILTER_README: it takes mail over SMTP on one port, adds a header, and
gives it back over SMTP on the MTA's re-injection port before answering
250 (so nothing is lost if the re-injection fails).

Usage: pass_filter.py LISTEN_PORT REINJECT_PORT
"""

import smtplib
import socketserver
import sys


class Session(socketserver.StreamRequestHandler):
    def reply(self, text):
        self.wfile.write((text + "\r\n").encode())

    def handle(self):
        self.reply("220 filter ESMTP")
        sender, rcpts = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode(errors="replace").strip()
            verb = cmd.split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 filter")
            elif verb == "MAIL":
                sender, rcpts = cmd.split(":", 1)[1].strip().strip("<>").split(">")[0], []
                self.reply("250 ok")
            elif verb == "RCPT":
                rcpts.append(cmd.split(":", 1)[1].strip().strip("<>").split(">")[0])
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                data = b""
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b""):
                        break
                    if chunk.startswith(b".."):
                        chunk = chunk[1:]
                    data += chunk
                try:
                    with smtplib.SMTP("127.0.0.1", int(sys.argv[2])) as out:
                        out.sendmail(sender, rcpts, b"X-Filtered: yes\r\n" + data)
                    self.reply("250 ok: filtered")
                except Exception as e:  # noqa: BLE001 - told to the MTA
                    self.reply("451 re-injection failed: %s" % e)
            elif verb == "RSET":
                sender, rcpts = None, []
                self.reply("250 ok")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    Server(("127.0.0.1", int(sys.argv[1])), Session).serve_forever()
