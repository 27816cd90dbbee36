//! netascii (RFC 764 as used by RFC 1350): what a file looks like in `netascii` mode.
//!
//! Line ends become CR LF and a bare CR becomes CR NUL, so the client can turn both back
//! into its own convention. Conversion happens once per transfer on the whole file, which
//! is why the shell caps the size of files served in this mode.

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const NUL: u8 = 0;

/// `file` encoded as netascii.
pub fn encode(file: &[u8]) -> Vec<u8> {
    let extra = file.iter().filter(|&&c| c == CR || c == LF).count();
    let mut out = Vec::with_capacity(file.len() + extra);
    for &c in file {
        match c {
            LF => out.extend_from_slice(&[CR, LF]),
            CR => out.extend_from_slice(&[CR, NUL]),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ends_and_bare_cr() {
        assert_eq!(encode(b"a\nb\n"), b"a\r\nb\r\n");
        assert_eq!(encode(b"a\rb"), b"a\r\0b");
        assert_eq!(encode(b"dos\r\n"), b"dos\r\0\r\n");
        assert_eq!(encode(b""), b"");
        assert_eq!(encode(b"\0plain"), b"\0plain");
    }
}
