//! MAC addresses as operators write them: lowercase, colon-separated (`52:54:00:12:34:56`).

use std::fmt;

/// A hardware address shown in the operator's form; any length (DHCP `chaddr` may be
/// shorter or longer than Ethernet's six bytes).
pub struct Mac<'a>(pub &'a [u8]);

impl fmt::Display for Mac<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`), any case.
pub fn parse(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut out {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// A MAC read from text with [`parse`], for config lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacText(pub [u8; 6]);

impl std::str::FromStr for MacText {
    type Err = ();
    fn from_str(s: &str) -> Result<MacText, ()> {
        parse(s).map(MacText).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_show() {
        assert_eq!(
            parse("52:54:00:AB:cd:01"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 1])
        );
        assert_eq!(
            parse("52-54-00-ab-cd-01"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 1])
        );
        assert_eq!(parse("52:54:00:ab:cd"), None);
        assert_eq!(parse("52:54:00:ab:cd:01:02"), None);
        assert_eq!(
            Mac(&[0x52, 0x54, 0, 0xab, 0xcd, 1]).to_string(),
            "52:54:00:ab:cd:01"
        );
    }
}
