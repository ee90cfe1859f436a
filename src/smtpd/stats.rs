//! Per-session command counts for the `disconnect from` line, in Postfix's
//! form: `ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4` (accepted/total where
//! some were refused).

const ORDER: &[&str] = &[
    "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop", "vrfy",
    "expn", "etrn", "help", "quit", "unknown",
];

#[derive(Default)]
pub struct Stats {
    counts: [(u32, u32); ORDER.len()],
}

impl Stats {
    pub fn record(&mut self, name: &str, ok: bool) {
        if let Some(i) = ORDER.iter().position(|n| *n == name) {
            self.counts[i].1 += 1;
            if ok {
                self.counts[i].0 += 1;
            }
        }
    }

    pub fn summary(&self) -> String {
        let mut out = String::new();
        let (mut ok_all, mut all) = (0, 0);
        for (name, &(ok, total)) in ORDER.iter().zip(self.counts.iter()) {
            if total == 0 {
                continue;
            }
            ok_all += ok;
            all += total;
            out.push_str(&format!(" {name}={}", pair(ok, total)));
        }
        out.push_str(&format!(" commands={}", pair(ok_all, all)));
        out
    }
}

fn pair(ok: u32, total: u32) -> String {
    if ok == total {
        total.to_string()
    } else {
        format!("{ok}/{total}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_form() {
        let mut s = Stats::default();
        s.record("ehlo", true);
        s.record("rcpt", false);
        s.record("mail", true);
        s.record("quit", true);
        assert_eq!(s.summary(), " ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4");
        assert_eq!(Stats::default().summary(), " commands=0");
    }
}
