//! Cargo's `license` field as an SPDX license expression (or nothing, when it is not one).

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    With,
    Id(String),
}

/// Cargo's `license` field as an SPDX license expression, or `None` when it is not one.
///
/// crates.io once accepted `MIT/Apache-2.0` and lowercase operators; both are read as what they
/// meant. A `LicenseRef-` needs the license text in the document, which we do not have, so
/// those expressions count as unknown too.
pub(super) fn license_expression(raw: &str) -> Option<String> {
    let text = if raw.contains('/') {
        // Slashes mixed with operators have no agreed meaning.
        if tokens(raw)?.iter().any(|t| !matches!(t, Token::Id(_))) {
            return None;
        }
        raw.replace('/', " OR ")
    } else {
        raw.to_owned()
    };
    let tokens = tokens(&text)?;
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
    };
    parser.expression()?;
    (parser.pos == tokens.len()).then(|| render(&tokens))
}

fn tokens(text: &str) -> Option<Vec<Token>> {
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    spaced.split_whitespace().map(token).collect()
}

fn token(word: &str) -> Option<Token> {
    Some(match word {
        "(" => Token::Open,
        ")" => Token::Close,
        w if w.eq_ignore_ascii_case("AND") => Token::And,
        w if w.eq_ignore_ascii_case("OR") => Token::Or,
        w if w.eq_ignore_ascii_case("WITH") => Token::With,
        // Slashes are legacy OR separators, split off later.
        w if w.contains('/') => Token::Id(w.to_owned()),
        w => {
            let id = w.strip_suffix('+').unwrap_or(w);
            let valid = !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            let reference = ["LicenseRef-", "DocumentRef-"]
                .iter()
                .any(|p| id.len() >= p.len() && id[..p.len()].eq_ignore_ascii_case(p));
            if !valid || reference {
                return None;
            }
            Token::Id(w.to_owned())
        }
    })
}

/// Recursive descent over SPDX's grammar: OR binds loosest, then AND, then WITH.
struct Parser<'t> {
    tokens: &'t [Token],
    pos: usize,
}

impl Parser<'_> {
    fn next_is(&mut self, token: &Token) -> bool {
        let is = self.tokens.get(self.pos) == Some(token);
        self.pos += usize::from(is);
        is
    }

    fn expression(&mut self) -> Option<()> {
        self.conjunction()?;
        while self.next_is(&Token::Or) {
            self.conjunction()?;
        }
        Some(())
    }

    fn conjunction(&mut self) -> Option<()> {
        self.term()?;
        while self.next_is(&Token::And) {
            self.term()?;
        }
        Some(())
    }

    fn term(&mut self) -> Option<()> {
        if self.next_is(&Token::Open) {
            self.expression()?;
            return self.next_is(&Token::Close).then_some(());
        }
        self.id()?;
        if self.next_is(&Token::With) {
            self.id()?;
        }
        Some(())
    }

    fn id(&mut self) -> Option<()> {
        let is_id = matches!(self.tokens.get(self.pos), Some(Token::Id(_)));
        self.pos += usize::from(is_id);
        is_id.then_some(())
    }
}

fn render(tokens: &[Token]) -> String {
    let mut out = String::new();
    let mut after_open = true;
    for t in tokens {
        let word = match t {
            Token::Open => "(",
            Token::Close => ")",
            Token::And => "AND",
            Token::Or => "OR",
            Token::With => "WITH",
            Token::Id(id) => id,
        };
        if !after_open && *t != Token::Close {
            out.push(' ');
        }
        out.push_str(word);
        after_open = *t == Token::Open;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_expressions() {
        let cases = [
            ("MIT", Some("MIT")),
            ("MIT/Apache-2.0", Some("MIT OR Apache-2.0")),
            ("MIT / Apache-2.0", Some("MIT OR Apache-2.0")),
            ("MIT or Apache-2.0", Some("MIT OR Apache-2.0")),
            (
                "(MIT OR Apache-2.0) AND Unicode-3.0",
                Some("(MIT OR Apache-2.0) AND Unicode-3.0"),
            ),
            ("GPL-2.0+", Some("GPL-2.0+")),
            ("((MIT))", Some("((MIT))")),
            ("", None),
            ("MIT OR", None),
            ("(MIT", None),
            ("MIT)", None),
            ("MIT Apache-2.0", None),
            ("MIT/Apache-2.0 AND ISC", None),
            ("MIT WITH", None),
            ("WITH MIT", None),
            ("LicenseRef-Mine", None),
            ("MIT AND licenseref-x", None),
            ("Apache 2.0", None),
            ("MIT, Apache-2.0", None),
        ];
        for (raw, want) in cases {
            assert_eq!(license_expression(raw).as_deref(), want, "{raw:?}");
        }
    }
}
