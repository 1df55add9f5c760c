//! The APP argument. Only its shape is checked here; whether the module
//! imports is for the WSGI bridge to find out.

use crate::ConfigError;

/// `module:expr`, where `expr` is an attribute name or a factory call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    /// Dotted module path.
    pub module: String,
    /// `name` or `name(args)`; `application` when the user gave none.
    pub expr: String,
}

impl AppSpec {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let (module, expr) = raw.split_once(':').unwrap_or((raw, ""));
        let module = module.trim();
        let valid_module = !module.is_empty()
            && module.split('.').all(|part| {
                let mut chars = part.chars();
                chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
                    && chars.all(|c| c.is_alphanumeric() || c == '_')
            });
        if !valid_module {
            return Err(ConfigError::invalid(
                "APP",
                format!("{raw:?}: expected MODULE:NAME, e.g. myapp:app or 'myapp:create_app()'"),
            ));
        }
        let expr = match expr.trim() {
            "" => "application",
            e => e,
        };
        Ok(Self {
            module: module.to_string(),
            expr: expr.to_string(),
        })
    }
}

impl std::fmt::Display for AppSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.module, self.expr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_alone_means_application() {
        let s = AppSpec::parse("pkg.mod").unwrap();
        assert_eq!(
            (s.module.as_str(), s.expr.as_str()),
            ("pkg.mod", "application")
        );
    }

    #[test]
    fn factory_calls_are_kept_verbatim() {
        let s = AppSpec::parse("m:create_app('x', n=2)").unwrap();
        assert_eq!(s.expr, "create_app('x', n=2)");
    }

    #[test]
    fn bad_module_names_are_rejected() {
        for bad in ["", ":app", "a b:app", "1mod:app", "mod.:app", "my-app:app"] {
            assert!(AppSpec::parse(bad).is_err(), "{bad:?}");
        }
    }
}
