//! Printing an error with its causes, once each.

use std::error::Error;

/// The error and its chain of causes joined with ": ", skipping a cause whose
/// text is already part of what was printed (libraries often repeat their
/// source in their own message).
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        let message = current.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = current.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn repeated_causes_are_printed_once() {
        let io = Layer("Connection refused", None);
        let sqlx = Layer(
            "error communicating with database: Connection refused",
            Some(Box::new(io)),
        );
        let top = Layer(
            "cannot connect to PostgreSQL at postgres://h/db",
            Some(Box::new(sqlx)),
        );
        assert_eq!(
            error_chain(&top),
            "cannot connect to PostgreSQL at postgres://h/db: error communicating with database: Connection refused"
        );
    }
}
