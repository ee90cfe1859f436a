"""A milter for the tests, on libmilter (Debian's python3-milter): what it
does to a message depends on the recipient's local part.

  reject@     RCPT refused with the milter's own reply (550 5.7.1)
  tempfail@   RCPT refused for now
  discard@    the message is accepted and dropped
  hold@       the message is quarantined (the hold queue)
  late@       the end of the message refused (554 5.7.0)
  edit@       every change: headers added, inserted, changed and deleted,
              the recipient replaced, the sender changed, the body replaced

Every message gets X-Test-Milter headers with what it saw: the client,
the HELO name, the macros i and {auth_type}, the headers and body size.
Usage: test_milter.py inet:PORT@127.0.0.1
"""

import sys

import Milter


class TestMilter(Milter.Base):
    def __init__(self):
        self.id = Milter.uniqueID()

    @Milter.noreply
    def connect(self, hostname, family, hostaddr):
        self.client = "%s %s" % (hostname, hostaddr[0])
        return Milter.CONTINUE

    def hello(self, name):
        self.helo = name
        return Milter.CONTINUE

    def envfrom(self, sender, *args):
        self.rcpts = []
        self.headers = 0
        self.body_size = 0
        self.auth = self.getsymval("{auth_type}") or "none"
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *args):
        local = rcpt.strip("<>").split("@")[0]
        if local == "reject":
            self.setreply("550", "5.7.1", "rejected by the test milter")
            return Milter.REJECT
        if local == "tempfail":
            return Milter.TEMPFAIL
        self.rcpts.append(rcpt)
        return Milter.CONTINUE

    def header(self, name, value):
        self.headers += 1
        return Milter.CONTINUE

    def body(self, chunk):
        self.body_size += len(chunk)
        return Milter.CONTINUE

    def eom(self):
        locals_ = [r.strip("<>").split("@")[0] for r in self.rcpts]
        self.addheader("X-Test-Milter", "client=%s helo=%s" % (self.client, self.helo))
        self.addheader("X-Test-Milter-Seen", "i=%s auth=%s headers=%d body=%d"
                       % (self.getsymval("i"), self.auth, self.headers, self.body_size))
        if "discard" in locals_:
            return Milter.DISCARD
        if "hold" in locals_:
            self.quarantine("held by the test milter")
            return Milter.ACCEPT
        if "late" in locals_:
            self.setreply("554", "5.7.0", "content refused by the test milter")
            return Milter.REJECT
        if "edit" in locals_:
            self.addheader("X-Top", "first", 0)
            self.chgheader("Subject", 1, "changed by the milter")
            self.chgheader("X-Remove-Me", 1, "")
            self.delrcpt(self.rcpts[locals_.index("edit")])
            self.addrcpt("<edited@mx.test.example>")
            self.chgfrom("<new-sender@client.example>")
            self.replacebody(b"the milter's body\r\n")
        return Milter.ACCEPT


def main():
    Milter.factory = TestMilter
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.ADDRCPT | Milter.DELRCPT
                     | Milter.CHGFROM | Milter.CHGBODY | Milter.QUARANTINE)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    Milter.runmilter("test", sys.argv[1], 60)


if __name__ == "__main__":
    main()
