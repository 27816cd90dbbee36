//! A machine's next actions as a sequence: steps that run and report (`inventory`,
//! `burnin`), Memtest86+ (`memtest`, watched by a person, so it is done once its image is
//! fetched), then where the machine ends (`local`, `menu`, `poweroff`, or any other menu
//! item, which stays until changed). One action is `{"next": "inventory"}`; a whole batch
//! can get `["inventory", "burnin", "poweroff"]` and be left alone.
//!
//! The pipeline only holds the sequence and where the machine is in it. What each action
//! boots is decided in [`crate::policy`]; what moves the machine on (a report, a fetch)
//! is observed in [`crate::machines`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sixboot_report::Step;
use std::fmt;

/// The menu item whose image runs the reporting steps.
pub const BURNIN_ITEM: &str = "burnin";
/// The menu item the `memtest` step boots.
pub const MEMTEST_ITEM: &str = "memtest";

/// Steps, in the order an operator would usually run them.
pub const STEPS: [&str; 3] = ["inventory", "burnin", "memtest"];
/// Where a pipeline may end.
pub const ENDS: [&str; 3] = ["local", "menu", "poweroff"];
/// Longest pipeline taken.
pub const MAX_ACTIONS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The burn-in image, running one reporting step.
    Run(Step),
    /// The `memtest` menu item.
    Memtest,
    /// Boot from the local disk.
    Local,
    /// The boot menu.
    Menu,
    /// Power off (iPXE's `poweroff`, else the local disk).
    Poweroff,
    /// Any other menu item.
    Item(String),
}

impl Action {
    /// The action a name stands for; menu item ids are not checked here.
    pub fn from_name(s: &str) -> Action {
        match s {
            "inventory" => Action::Run(Step::Inventory),
            "burnin" => Action::Run(Step::Burnin),
            "memtest" => Action::Memtest,
            "local" => Action::Local,
            "menu" => Action::Menu,
            "poweroff" => Action::Poweroff,
            other => Action::Item(other.to_string()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Action::Run(s) => s.as_str(),
            Action::Memtest => "memtest",
            Action::Local => "local",
            Action::Menu => "menu",
            Action::Poweroff => "poweroff",
            Action::Item(id) => id,
        }
    }

    /// Whether the machine moves past this action once it is done (a step), rather than
    /// staying at it (an end).
    pub fn is_step(&self) -> bool {
        matches!(self, Action::Run(_) | Action::Memtest)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Action::from_name(&String::deserialize(d)?))
    }
}

/// The sequence and the index of the current action. Once past the last action (a
/// pipeline of steps only), there is no current one: the machine gets what it would
/// without a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    pub steps: Vec<Action>,
    pub at: usize,
}

impl Pipeline {
    /// Checks names against the menu (`items`: its ids): known names, steps whose menu
    /// item exists, and an end only last. The error lists what is valid.
    pub fn parse<S: AsRef<str>>(names: &[S], items: &[&str]) -> Result<Pipeline, String> {
        if names.is_empty() || names.len() > MAX_ACTIONS {
            return Err(format!("a pipeline has 1 to {MAX_ACTIONS} actions"));
        }
        let mut steps = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let name = name.as_ref();
            let known = STEPS.contains(&name) || ENDS.contains(&name) || items.contains(&name);
            if !known {
                return Err(format!("unknown step `{name}`; {}", valid(items)));
            }
            let a = Action::from_name(name);
            let needs = match a {
                Action::Run(_) => Some(BURNIN_ITEM),
                Action::Memtest => Some(MEMTEST_ITEM),
                _ => None,
            };
            if let Some(item) = needs.filter(|n| !items.contains(n)) {
                return Err(format!(
                    "step `{name}` needs a [[menu.item]] with id = \"{item}\""
                ));
            }
            if !a.is_step() && i + 1 != names.len() {
                return Err(format!("`{name}` ends a pipeline: it can only come last"));
            }
            steps.push(a);
        }
        Ok(Pipeline { steps, at: 0 })
    }

    pub fn current(&self) -> Option<&Action> {
        self.steps.get(self.at)
    }

    /// Moves past the current action when it is `done`; an end is never passed.
    pub fn advance(&mut self, done: &Action) -> bool {
        match self.current() {
            Some(c) if c == done && c.is_step() => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    pub fn names(&self) -> Vec<&str> {
        self.steps.iter().map(Action::name).collect()
    }
}

/// What a pipeline may hold, for error messages.
pub fn valid(items: &[&str]) -> String {
    let others: Vec<&str> = items
        .iter()
        .copied()
        .filter(|i| !STEPS.contains(i))
        .collect();
    let mut s = format!("steps: {}; ends: {}", STEPS.join(", "), ENDS.join(", "));
    if !others.is_empty() {
        s.push_str(&format!("; menu items: {}", others.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEMS: [&str; 3] = ["memtest", "burnin", "linux"];

    #[test]
    fn names_are_checked_and_ends_come_last() {
        let p = Pipeline::parse(&["inventory", "burnin", "poweroff"], &ITEMS).unwrap();
        assert_eq!(p.names(), ["inventory", "burnin", "poweroff"]);
        assert_eq!(p.current(), Some(&Action::Run(Step::Inventory)));
        let e = Pipeline::parse(&["inventory", "fry"], &ITEMS).unwrap_err();
        assert_eq!(
            e,
            "unknown step `fry`; steps: inventory, burnin, memtest; ends: local, menu, poweroff; menu items: linux"
        );
        let e = Pipeline::parse(&["local", "burnin"], &ITEMS).unwrap_err();
        assert_eq!(e, "`local` ends a pipeline: it can only come last");
        assert!(Pipeline::parse(&["linux"], &ITEMS).is_ok());
        let e = Pipeline::parse(&["burnin"], &["memtest"]).unwrap_err();
        assert!(
            e.contains("needs a [[menu.item]] with id = \"burnin\""),
            "{e}"
        );
        assert!(Pipeline::parse::<&str>(&[], &ITEMS).is_err());
        assert!(Pipeline::parse(&["inventory"; 17], &ITEMS).is_err());
    }

    #[test]
    fn steps_advance_when_done_and_ends_stay() {
        let mut p =
            Pipeline::parse(&["inventory", "memtest", "burnin", "poweroff"], &ITEMS).unwrap();
        assert!(
            !p.advance(&Action::Run(Step::Burnin)),
            "not the current step"
        );
        assert!(p.advance(&Action::Run(Step::Inventory)));
        assert!(p.advance(&Action::Memtest));
        assert!(p.advance(&Action::Run(Step::Burnin)));
        assert_eq!(p.current(), Some(&Action::Poweroff));
        assert!(!p.advance(&Action::Poweroff));
        let mut only = Pipeline::parse(&["inventory"], &ITEMS).unwrap();
        assert!(only.advance(&Action::Run(Step::Inventory)));
        assert_eq!(only.current(), None);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"steps":["inventory","memtest","burnin","poweroff"],"at":3}"#
        );
        assert_eq!(serde_json::from_str::<Pipeline>(&json).unwrap(), p);
    }
}
