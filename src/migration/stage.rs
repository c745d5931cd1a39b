//! The stages of a migrated route and what each one does with its traffic.

/// Where a route stands in its migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// The monolith serves; the new service gets nothing.
    Legacy,
    /// The monolith serves; every request is copied to the new service and compared.
    Shadow,
    /// A sticky share goes to the new service (fixed, or moved by a ramp); the rest is
    /// served by the monolith and copied to the new service.
    Canary,
    /// The new service serves; the monolith gets a copy (a reverse shadow), still compared.
    New,
    /// The new service serves; the monolith is no longer called.
    Retired,
}

pub const ALL: [Stage; 5] = [
    Stage::Legacy,
    Stage::Shadow,
    Stage::Canary,
    Stage::New,
    Stage::Retired,
];

impl Stage {
    pub fn parse(text: &str) -> Option<Stage> {
        ALL.into_iter().find(|s| s.label() == text)
    }

    pub fn label(self) -> &'static str {
        match self {
            Stage::Legacy => "legacy",
            Stage::Shadow => "shadow",
            Stage::Canary => "canary",
            Stage::New => "new",
            Stage::Retired => "retired",
        }
    }

    /// The stage after this one, if any.
    pub fn next(self) -> Option<Stage> {
        let i = ALL.iter().position(|s| *s == self)?;
        ALL.get(i + 1).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_and_follow_each_other() {
        for s in ALL {
            assert_eq!(Stage::parse(s.label()), Some(s));
        }
        assert_eq!(Stage::parse("beta"), None);
        assert_eq!(Stage::Shadow.next(), Some(Stage::Canary));
        assert_eq!(Stage::Retired.next(), None);
    }
}
