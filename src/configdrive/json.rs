//! Reading a `serde_json::Value` with the JSON path of every value at hand, so each error can say
//! where it is (`links[2].ethernet_mac_address`). Deriving `Deserialize` would lose the path (and
//! `serde_path_to_error` is not a dependency), and a hand-written walk also lets each field choose
//! to be strict (seedpart acts on it) or lenient (kept as is, with a warning).

use serde_json::{Map, Value};

use super::ModelError;

static NULL: Value = Value::Null;

/// Longest rendering of a found value in a message: a 10 MiB hostname must not make a 10 MiB
/// error line in the journal.
const SHOWN: usize = 60;

/// Parses a whole JSON document; a syntax error names the file, line and column.
pub(crate) fn parse(file: &str, bytes: &[u8]) -> Result<Value, ModelError> {
    serde_json::from_slice(bytes).map_err(|e| syntax(file, &e))
}

pub(crate) fn syntax(file: &str, e: &serde_json::Error) -> ModelError {
    // serde_json's Display ends with " at line L column C": the message carries them apart.
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    ModelError::Syntax {
        file: file.to_string(),
        line: e.line(),
        column: e.column(),
        msg,
    }
}

/// A short description of a value for "found ..." in messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            if s.len() <= SHOWN {
                format!("{s:?}")
            } else {
                let mut cut = SHOWN;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!("a string of {} bytes starting {:?}", s.len(), &s[..cut])
            }
        }
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// A value inside a file, with its JSON path.
#[derive(Clone, Debug)]
pub(crate) struct Node<'a> {
    file: &'a str,
    path: String,
    v: &'a Value,
    absent: bool,
}

impl<'a> Node<'a> {
    pub fn root(file: &'a str, v: &'a Value) -> Self {
        Node {
            file,
            path: String::new(),
            v,
            absent: false,
        }
    }

    pub fn value(&self) -> &'a Value {
        self.v
    }

    /// The JSON path, `(top level)` for the document itself.
    pub fn path(&self) -> String {
        if self.path.is_empty() {
            "(top level)".into()
        } else {
            self.path.clone()
        }
    }

    /// Absent, or present as `null`: both mean "not given" for an optional field.
    pub fn opt(self) -> Option<Node<'a>> {
        if self.absent || self.v.is_null() {
            None
        } else {
            Some(self)
        }
    }

    pub fn is_given(&self) -> bool {
        !self.absent && !self.v.is_null()
    }

    /// An error at this node: "expected {expected}, found {what is here}".
    pub fn invalid(&self, expected: impl Into<String>) -> ModelError {
        ModelError::Invalid {
            file: self.file.to_string(),
            path: self.path(),
            expected: expected.into(),
            found: if self.absent {
                "nothing (the key is missing)".into()
            } else {
                describe(self.v)
            },
        }
    }

    /// An error at this node that is not about its type.
    pub fn inconsistent(&self, detail: impl Into<String>) -> ModelError {
        ModelError::Inconsistent {
            file: self.file.to_string(),
            path: self.path(),
            detail: detail.into(),
        }
    }

    pub fn obj(&self) -> Result<Obj<'a>, ModelError> {
        match self.v {
            Value::Object(map) if !self.absent => Ok(Obj {
                node: self.clone(),
                map,
                taken: Vec::new(),
            }),
            _ => Err(self.invalid("a JSON object")),
        }
    }

    pub fn items(&self) -> Result<Vec<Node<'a>>, ModelError> {
        match self.v {
            Value::Array(a) if !self.absent => Ok(a
                .iter()
                .enumerate()
                .map(|(i, v)| Node {
                    file: self.file,
                    path: format!("{}[{i}]", self.path),
                    v,
                    absent: false,
                })
                .collect()),
            _ => Err(self.invalid("a JSON array")),
        }
    }

    pub fn str(&self) -> Result<&'a str, ModelError> {
        match self.v {
            Value::String(s) if !self.absent => Ok(s),
            _ => Err(self.invalid("a string")),
        }
    }

    /// A string, or a number written as one (some producers quote numbers, some do not).
    pub fn string_or_number(&self) -> Result<String, ModelError> {
        match self.v {
            Value::String(s) if !self.absent => Ok(s.clone()),
            Value::Number(n) if !self.absent => Ok(n.to_string()),
            _ => Err(self.invalid("a string")),
        }
    }

    /// A whole number in `min..=max`, given as a JSON number (`1500`, `1500.0`) or a string
    /// holding one (`"1500"`): producers disagree on which.
    pub fn uint(&self, min: u64, max: u64, what: &str) -> Result<u64, ModelError> {
        let expected = || format!("{what} (a whole number from {min} to {max})");
        let n = match self.v {
            _ if self.absent => None,
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            }),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(expected())),
        }
    }
}

/// A JSON object being read field by field; the fields not taken are what `rest` returns, so
/// unknown keys are kept rather than lost.
pub(crate) struct Obj<'a> {
    node: Node<'a>,
    map: &'a Map<String, Value>,
    taken: Vec<&'a str>,
}

impl<'a> Obj<'a> {
    fn child(&self, key: &str) -> Node<'a> {
        let path = if is_ident(key) {
            if self.node.path.is_empty() {
                key.to_string()
            } else {
                format!("{}.{key}", self.node.path)
            }
        } else {
            format!("{}[{}]", self.node.path, Value::String(key.to_string()))
        };
        match self.map.get(key) {
            Some(v) => Node {
                file: self.node.file,
                path,
                v,
                absent: false,
            },
            None => Node {
                file: self.node.file,
                path,
                v: &NULL,
                absent: true,
            },
        }
    }

    /// The field `key`, marked as read (it will not reappear in `rest`).
    pub fn take(&mut self, key: &str) -> Node<'a> {
        if let Some((k, _)) = self.map.get_key_value(key) {
            self.taken.push(k.as_str());
        }
        self.child(key)
    }

    /// A field seedpart does not act on: when `read` fails, the failure is logged and the raw
    /// value stays in `rest` instead of failing the whole drive.
    pub fn lenient<T>(
        &mut self,
        key: &str,
        read: impl FnOnce(Node<'a>) -> Result<T, ModelError>,
    ) -> Option<T> {
        let node = self.child(key).opt()?;
        match read(node) {
            Ok(v) => {
                self.take(key);
                Some(v)
            }
            Err(e) => {
                log::warn!("{e}; keeping the value as it is");
                None
            }
        }
    }

    /// Every `(key, node)` pair, marking all as read.
    pub fn take_all(&mut self) -> Vec<(&'a str, Node<'a>)> {
        let keys: Vec<&'a str> = self.map.keys().map(String::as_str).collect();
        keys.into_iter().map(|k| (k, self.take(k))).collect()
    }

    /// Keys starting with `prefix` that were not read yet, marking them read.
    pub fn take_prefixed(&mut self, prefix: &str) -> Vec<(&'a str, Node<'a>)> {
        let keys: Vec<&'a str> = self
            .map
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with(prefix) && !self.taken.contains(k))
            .collect();
        keys.into_iter().map(|k| (k, self.take(k))).collect()
    }

    /// The fields not read, as they were.
    pub fn rest(self) -> Map<String, Value> {
        self.map
            .iter()
            .filter(|(k, _)| !self.taken.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn is_ident(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_found_values() {
        let v: Value = serde_json::from_str(
            r#"{"links": [{"id": 1}, {"odd-key": {"x": "zz"}}], "long": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
        )
        .unwrap();
        let root = Node::root("f.json", &v);
        let mut o = root.obj().unwrap();
        let links = o.take("links").items().unwrap();
        let e = links[0].obj().unwrap().take("id").str().unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.json: links[0].id: expected a string, found 1"
        );
        let e = links[1]
            .obj()
            .unwrap()
            .take("odd-key")
            .obj()
            .unwrap()
            .take("x")
            .uint(0, 9, "a digit");
        assert_eq!(
            e.unwrap_err().to_string(),
            r#"f.json: links[1]["odd-key"].x: expected a digit (a whole number from 0 to 9), found "zz""#
        );
        let e = o.take("missing").str().unwrap_err().to_string();
        assert!(
            e.contains("missing: expected a string, found nothing"),
            "{e}"
        );
        let e = o.take("long").uint(0, 1, "n").unwrap_err().to_string();
        assert!(e.contains("found a string of 80 bytes starting"), "{e}");
        assert!(o.rest().is_empty());
        assert_eq!(root.items().unwrap_err().json_path(), Some("(top level)"));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = parse("x.json", b"{\n  \"a\": 1,\n  \"b\" 2\n}").unwrap_err();
        match &e {
            ModelError::Syntax {
                line, column, msg, ..
            } => {
                assert_eq!((*line, *column), (3, 7));
                assert!(!msg.contains("line"), "{msg}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            e.to_string()
                .starts_with("x.json: malformed JSON at line 3, column 7: ")
        );
    }

    #[test]
    fn numbers_are_read_leniently() {
        let v: Value =
            serde_json::from_str(r#"[1500, 1500.0, "1500", " 9 ", -1, 1.5, true]"#).unwrap();
        let n = Node::root("f", &v).items().unwrap();
        let r: Vec<_> = n.iter().map(|n| n.uint(0, 65535, "n").ok()).collect();
        assert_eq!(
            r,
            [
                Some(1500),
                Some(1500),
                Some(1500),
                Some(9),
                None,
                None,
                None
            ]
        );
    }
}
