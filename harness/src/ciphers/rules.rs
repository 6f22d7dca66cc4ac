//! The rule engine: a port of OpenSSL 3.0's `ssl_cipher_process_rulestr` and
//! `ssl_cipher_apply_rule` (ssl/ssl_ciph.c).
//!
//! [`Engine`] is OpenSSL's `co_list`, starting from the order of `table.rs`; it reads a cipher
//! string word by word (`!`, `-`, `+`, `@STRENGTH`, `@SECLEVEL=n`, `+`-joined parts narrowed
//! into a [`Pattern`]) and reports what each word did. Names are read by `alias.rs`. Once the
//! list is built, [`supported_by_cli`] is the security-level filter `openssl ciphers -s` applies.

use super::alias::{Part, lookup, suggest};
use super::table::{
    A_NULL, A_PSK, A_SRP, CIPHERS, Cipher, DEFAULT_MASK, K_ANY_PSK, K_DHE, K_ECDHE, K_SRP, M_MD5, M_SHA1, STRONG_MASK,
};
use super::{CipherError, WordOutcome, WordReport, outcome_for};

/// The security level assumed unless the string says `@SECLEVEL=n`. Upstream's default is 1,
/// Debian builds with 2; both select the same ciphers from OpenSSL 3.0's table (nothing in it has
/// fewer than 112 bits or uses RC4), so `openssl ciphers -s` agrees either way.
const DEFAULT_SECURITY_LEVEL: u8 = 2;

/// `openssl ciphers -s -tls1_2`: `SSL_get1_supported_ciphers` drops PSK and SRP ciphers (no
/// callbacks are set) and asks the security callback (`ssl_security_default_callback`).
pub(super) fn supported_by_cli(c: &Cipher, level: u8) -> bool {
    if c.mkey & (K_ANY_PSK | K_SRP) != 0 || c.auth & (A_PSK | A_SRP) != 0 {
        return false;
    }
    if level == 0 {
        return true;
    }
    let minbits = match level {
        1 => 80,
        2 => 112,
        3 => 128,
        4 => 192,
        _ => 256,
    };
    if c.strength_bits < minbits || c.auth & A_NULL != 0 || c.mac & M_MD5 != 0 {
        return false;
    }
    if minbits > 160 && c.mac & M_SHA1 != 0 {
        return false;
    }
    if level >= 3 && c.mkey & (K_DHE | K_ECDHE) == 0 {
        return false;
    }
    true
}

/// A selection pattern: the fields `ssl_cipher_apply_rule` matches on.
#[derive(Debug, Default, Clone, Copy)]
struct Pattern {
    cipher_id: Option<u16>,
    mkey: u32,
    auth: u32,
    enc: u32,
    mac: u32,
    min_tls: u16,
    algo_strength: u32,
}

impl Pattern {
    fn matches(&self, c: &Cipher) -> bool {
        if self.cipher_id.is_some_and(|id| id != c.id) {
            return false;
        }
        if (self.mkey != 0 && self.mkey & c.mkey == 0)
            || (self.auth != 0 && self.auth & c.auth == 0)
            || (self.enc != 0 && self.enc & c.enc == 0)
            || (self.mac != 0 && self.mac & c.mac == 0)
        {
            return false;
        }
        if self.min_tls != 0 && self.min_tls != c.min_tls {
            return false;
        }
        if self.algo_strength & STRONG_MASK != 0 && self.algo_strength & STRONG_MASK & c.algo_strength == 0 {
            return false;
        }
        if self.algo_strength & DEFAULT_MASK != 0 && self.algo_strength & DEFAULT_MASK & c.algo_strength == 0 {
            return false;
        }
        true
    }

    /// Adds one `+` part, as `ssl_cipher_process_rulestr` does; false when the parts exclude
    /// each other.
    fn and(&mut self, part: &Part) -> bool {
        fn narrow(acc: &mut u32, mask: u32) -> bool {
            if mask != 0 {
                if *acc != 0 {
                    *acc &= mask;
                    if *acc == 0 {
                        return false;
                    }
                } else {
                    *acc = mask;
                }
            }
            true
        }
        if !(narrow(&mut self.mkey, part.mkey)
            && narrow(&mut self.auth, part.auth)
            && narrow(&mut self.enc, part.enc)
            && narrow(&mut self.mac, part.mac))
        {
            return false;
        }
        // As ssl_cipher_process_rulestr does, quirk included: a first strength class *replaces*
        // the field, dropping a `COMPLEMENTOFDEFAULT` bit set by an earlier part
        // (`COMPLEMENTOFDEFAULT+ECDHE-RSA-CHACHA20-POLY1305` selects that default cipher).
        if part.algo_strength & STRONG_MASK != 0 {
            if self.algo_strength & STRONG_MASK != 0 {
                self.algo_strength &= (part.algo_strength & STRONG_MASK) | !STRONG_MASK;
                if self.algo_strength & STRONG_MASK == 0 {
                    return false;
                }
            } else {
                self.algo_strength = part.algo_strength & STRONG_MASK;
            }
        }
        if part.algo_strength & DEFAULT_MASK != 0 {
            if self.algo_strength & DEFAULT_MASK != 0 {
                self.algo_strength &= (part.algo_strength & DEFAULT_MASK) | !DEFAULT_MASK;
                if self.algo_strength & DEFAULT_MASK == 0 {
                    return false;
                }
            } else {
                self.algo_strength |= part.algo_strength & DEFAULT_MASK;
            }
        }
        match part.cipher_id {
            // An explicit cipher: its version is not part of the pattern.
            Some(id) => self.cipher_id = Some(id),
            None => {
                if part.min_tls != 0 {
                    if self.min_tls != 0 && self.min_tls != part.min_tls {
                        return false;
                    }
                    self.min_tls = part.min_tls;
                }
            }
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Kill,
    Del,
    Ord,
}

/// OpenSSL's `co_list` as a vector: the order, which ciphers are active, and the security level.
#[derive(Debug)]
pub(super) struct Engine {
    /// Indices into [`CIPHERS`]; killed ciphers are gone from it.
    order: Vec<usize>,
    active: Vec<bool>,
    pub(super) security_level: u8,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=')
}

fn is_separator(b: u8) -> bool {
    matches!(b, b':' | b' ' | b';' | b',')
}

impl Engine {
    /// The sorted `co_list`, everything disabled: where `ssl_create_cipher_list` starts reading.
    pub(super) fn new() -> Self {
        Engine {
            order: (0..CIPHERS.len()).collect(),
            active: vec![false; CIPHERS.len()],
            security_level: DEFAULT_SECURITY_LEVEL,
        }
    }

    pub(super) fn active(&self) -> impl Iterator<Item = &'static Cipher> + '_ {
        self.order.iter().filter(|&&i| self.active[i]).map(|&i| &CIPHERS[i])
    }

    pub(super) fn active_names(&self) -> Vec<&'static str> {
        self.active().map(|c| c.name).collect()
    }

    fn move_to(&mut self, idx: usize, tail: bool) {
        if let Some(pos) = self.order.iter().position(|&i| i == idx) {
            self.order.remove(pos);
            if tail {
                self.order.push(idx);
            } else {
                self.order.insert(0, idx);
            }
        }
    }

    /// `ssl_cipher_apply_rule`; returns the ciphers the pattern matched, in list order.
    fn apply(&mut self, select: impl Fn(&Cipher) -> bool, op: Op) -> Vec<usize> {
        let mut visit = self.order.clone();
        let reverse = op == Op::Del;
        if reverse {
            visit.reverse();
        }
        let mut matched = Vec::new();
        for idx in visit {
            if !select(&CIPHERS[idx]) {
                continue;
            }
            matched.push(idx);
            match op {
                Op::Add => {
                    if !self.active[idx] {
                        self.move_to(idx, true);
                        self.active[idx] = true;
                    }
                }
                Op::Ord => {
                    if self.active[idx] {
                        self.move_to(idx, true);
                    }
                }
                Op::Del => {
                    if self.active[idx] {
                        self.move_to(idx, false);
                        self.active[idx] = false;
                    }
                }
                Op::Kill => {
                    self.order.retain(|&i| i != idx);
                    self.active[idx] = false;
                }
            }
        }
        if reverse {
            matched.reverse();
        }
        matched
    }

    /// `ssl_cipher_strength_sort`: a stable sort of the active ciphers by strength bits.
    fn strength_sort(&mut self) {
        let max = self.active().map(|c| c.strength_bits).max().unwrap_or(0);
        for bits in (0..=max).rev() {
            if self.active().any(|c| c.strength_bits == bits) {
                self.apply(|c| c.strength_bits == bits, Op::Ord);
            }
        }
    }

    /// `ssl_cipher_process_rulestr`. `base` is the offset of `rules` in `whole` (for errors).
    pub(super) fn process(
        &mut self,
        rules: &[u8],
        base: usize,
        whole: &str,
        words: &mut Vec<WordReport>,
    ) -> Result<(), CipherError> {
        let text = |from: usize, to: usize| String::from_utf8_lossy(&rules[from..to]).into_owned();
        let mut l = 0;
        while l < rules.len() {
            let ch = rules[l];
            if is_separator(ch) {
                l += 1;
                continue;
            }
            let start = l;
            let op = match ch {
                b'-' => Some(Op::Del),
                b'+' => Some(Op::Ord),
                b'!' => Some(Op::Kill),
                b'@' => None,
                _ => Some(Op::Add),
            };
            if op != Some(Op::Add) {
                l += 1;
            }
            let word_end = |from: usize| {
                let mut e = from;
                while e < rules.len() && !is_separator(rules[e]) {
                    e += 1;
                }
                e
            };
            let syntax_error = |at: usize| CipherError::Syntax {
                string: whole.to_owned(),
                position: base + at,
                text: String::from_utf8_lossy(&rules[at..word_end(at)]).into_owned(),
            };

            let Some(op) = op else {
                // CIPHER_SPECIAL: one name, then skip to the separator.
                let name_start = l;
                while l < rules.len() && is_word_byte(rules[l]) {
                    l += 1;
                }
                if l == name_start {
                    return Err(syntax_error(name_start));
                }
                let command = text(name_start, l);
                let effect = if command == "STRENGTH" {
                    self.strength_sort();
                    "sorts the list by strength bits (stable)".to_owned()
                } else if let Some(level) = command
                    .strip_prefix("SECLEVEL=")
                    .filter(|d| d.len() == 1)
                    .and_then(|d| d.parse::<u8>().ok())
                    .filter(|&d| d <= 5)
                {
                    self.security_level = level;
                    format!("sets the security level to {level}")
                } else {
                    return Err(CipherError::Command { string: whole.to_owned(), command });
                };
                l = word_end(l);
                words.push(WordReport { word: text(start, l), outcome: WordOutcome::Command { effect } });
                continue;
            };

            // Read the '+'-joined parts of one word.
            let mut pattern = Pattern::default();
            let mut outcome: Option<WordOutcome> = None;
            loop {
                let part_start = l;
                while l < rules.len() && is_word_byte(rules[l]) {
                    l += 1;
                }
                if l == part_start {
                    return Err(syntax_error(part_start));
                }
                let name = text(part_start, l);
                let multi = rules.get(l) == Some(&b'+');
                if multi {
                    l += 1;
                }
                match lookup(&name) {
                    None => {
                        let suggestion = suggest(&name).map(|best| {
                            let mut s = text(start, part_start);
                            s.push_str(best);
                            s.push_str(&text(part_start + name.len(), word_end(part_start)));
                            s
                        });
                        outcome = Some(WordOutcome::Unknown { suggestion });
                        break;
                    }
                    Some(part) => {
                        if !pattern.and(&part) {
                            outcome = Some(WordOutcome::MatchedNothing);
                            break;
                        }
                    }
                }
                if !multi {
                    break;
                }
            }
            let outcome = match outcome {
                Some(o) => {
                    // Not found: OpenSSL skips the rest of the word.
                    l = word_end(l);
                    o
                }
                None => {
                    let matched = self.apply(|c| pattern.matches(c), op);
                    let names: Vec<&'static str> = matched.iter().map(|&i| CIPHERS[i].name).collect();
                    outcome_for(&names)
                }
            };
            words.push(WordReport { word: text(start, l), outcome });
            // Whatever follows the word starts the next one (`HIGH!MEDIUM` reads as
            // `HIGH:!MEDIUM`); a character that cannot start a word fails there.
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::{
        A_ECDSA, A_NULL, CIPHERS, E_AES, E_AESGCM, E_CHACHA20POLY1305, E_RC4, K_DHE, K_ECDHE, K_PSK, K_RSA, M_AEAD,
        M_MD5, TLS1_2,
    };
    use super::{Engine, Op};

    /// The table's order is a fixed point of the sort `ssl_create_cipher_list` runs before it
    /// reads a cipher string: replaying it on the table gives the table back. (The CLI
    /// comparisons in tests/ciphers.rs check the order itself.)
    #[test]
    fn table_order_is_a_fixed_point_of_openssls_default_sort() {
        let mut e = Engine::new();
        e.apply(|c| c.mkey & K_ECDHE != 0 && c.auth & A_ECDSA != 0, Op::Add);
        e.apply(|c| c.mkey & K_ECDHE != 0, Op::Add);
        e.apply(|c| c.mkey & K_ECDHE != 0, Op::Del);
        e.apply(|c| c.enc & E_AESGCM != 0, Op::Add);
        e.apply(|c| c.enc & E_CHACHA20POLY1305 != 0, Op::Add);
        e.apply(|c| c.enc & (E_AES ^ E_AESGCM) != 0, Op::Add);
        e.apply(|_| true, Op::Add);
        e.apply(|c| c.mac & M_MD5 != 0, Op::Ord);
        e.apply(|c| c.auth & A_NULL != 0, Op::Ord);
        e.apply(|c| c.mkey & K_RSA != 0, Op::Ord);
        e.apply(|c| c.mkey & K_PSK != 0, Op::Ord);
        e.apply(|c| c.enc & E_RC4 != 0, Op::Ord);
        e.strength_sort();
        // CIPHER_BUMP, everything active: a stable move of the matches to the head.
        let mut bump = |select: &dyn Fn(usize) -> bool| e.order.sort_by_key(|&i| !select(i));
        bump(&|i| CIPHERS[i].min_tls == TLS1_2);
        bump(&|i| CIPHERS[i].mac & M_AEAD != 0);
        bump(&|i| CIPHERS[i].mkey & (K_DHE | K_ECDHE) != 0);
        bump(&|i| CIPHERS[i].mkey & (K_DHE | K_ECDHE) != 0 && CIPHERS[i].mac & M_AEAD != 0);
        let expected: Vec<usize> = (0..CIPHERS.len()).collect();
        assert_eq!(e.order, expected);
    }
}
