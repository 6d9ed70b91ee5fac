//! What is wrong with a policy file, said so that an editor can jump to it.

use std::fmt;

use serde::Serialize;

/// One problem in a policy file: where it is, which field, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// The field path, e.g. `checks[1].slo.max`; empty for the document itself.
    pub path: String,
    /// What is wrong, and what was expected.
    pub message: String,
}

/// A policy file that could not be read or validated. Holds every problem found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct PolicyError {
    /// The file as the user named it.
    pub file: String,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "{line}:{}: ", self.column.unwrap_or(1))?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl fmt::Display for PolicyError {
    /// One line per problem, each `file:line:column: path: message`, the format editors and
    /// CI log viewers turn into links.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let gap = if problem.line.is_some() { "" } else { " " };
            write!(f, "{}:{gap}{problem}", self.file)?;
        }
        Ok(())
    }
}
