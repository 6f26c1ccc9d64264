//! The simulated phone's settings: flags (`--sim-…`, `BAPIWS_SIM_…`) and the file's
//! `[sim]` table come from one struct, checked once into [`SimSettings`].

use std::time::Duration;

use clap::Args as ClapArgs;
use serde::{Deserialize, Serialize};

use crate::phone::Availability;
use crate::settings::{SettingError, in_range, one_of};

/// The `[sim]` table and the `--sim-…` flags; unset values are `None`.
#[derive(ClapArgs, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
#[group(id = "sim_backend")]
pub struct Args {
    /// Whether the simulated far end answers outbound calls by itself. [default: true]
    #[arg(
        id = "sim_auto_answer",
        long = "sim-auto-answer",
        env = "BAPIWS_SIM_AUTO_ANSWER",
        value_name = "BOOL"
    )]
    pub auto_answer: Option<bool>,
    /// Milliseconds the simulated far end rings before answering. [default: 3000]
    #[arg(
        id = "sim_answer_delay_ms",
        long = "sim-answer-delay-ms",
        env = "BAPIWS_SIM_ANSWER_DELAY_MS",
        value_name = "MS"
    )]
    pub answer_delay_ms: Option<u64>,
    /// The simulated phone's availability at start. [default: Available]
    #[arg(
        id = "sim_availability",
        long = "sim-availability",
        env = "BAPIWS_SIM_AVAILABILITY",
        value_name = "STATE"
    )]
    pub availability: Option<String>,
    /// Most calls the simulated phone holds at once. [default: 16]
    #[arg(
        id = "sim_max_calls",
        long = "sim-max-calls",
        env = "BAPIWS_SIM_MAX_CALLS",
        value_name = "N"
    )]
    pub max_calls: Option<usize>,
}

/// The simulated phone's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimSettings {
    /// Whether the far end answers outbound calls by itself.
    pub auto_answer: bool,
    /// How long the far end lets an outbound call ring before answering.
    pub answer_delay: Duration,
    /// The availability the phone starts with.
    pub availability: Availability,
    /// The most calls the phone holds at once; more are refused.
    pub max_calls: usize,
}

impl Default for SimSettings {
    fn default() -> Self {
        SimSettings {
            auto_answer: true,
            answer_delay: Duration::from_secs(3),
            availability: Availability::Available,
            max_calls: 16,
        }
    }
}

impl Args {
    /// Checks every value; keys in errors are those of the `[sim]` table.
    pub fn resolve(&self) -> Result<SimSettings, SettingError> {
        let d = SimSettings::default();
        let availability = match &self.availability {
            None => d.availability,
            Some(s) => one_of(
                "availability",
                s,
                Availability::parse,
                &Availability::ALL.map(|a| a.as_str()),
            )?,
        };
        Ok(SimSettings {
            auto_answer: self.auto_answer.unwrap_or(d.auto_answer),
            answer_delay: Duration::from_millis(in_range(
                "answer_delay_ms",
                self.answer_delay_ms,
                3000,
                0,
                24 * 3600 * 1000,
            )?),
            availability,
            max_calls: in_range("max_calls", self.max_calls, d.max_calls, 1, 1000)?,
        })
    }
}
