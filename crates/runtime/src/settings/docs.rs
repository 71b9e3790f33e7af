//! The settings tables of `docs/settings.md`, generated from a binary's clap definitions so the
//! documentation cannot disagree with the code: every binary takes a hidden
//! `--print-settings-markdown` flag ([`PrintSettingsArgs`]) that prints [`markdown_table`] of its
//! own `Command` (`scripts/settings-docs.sh` assembles the file, `scripts/check-settings.sh`
//! fails when it is stale).
//!
//! One row per argument that has an env var: the variable, its default and its `--help` line.
//! The default column holds clap's default in backticks; an argument without one shows the
//! `[default: …]` its help text documents (plain text, e.g. "the hostname"), or `—`. A secret
//! (`hide_env_values`) never shows a default. Arguments of a subcommand say so.

use clap::Command;

/// `#[command(flatten)]` into a binary's arguments; `main` prints the table when it is set.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PrintSettingsArgs {
    /// Print the settings as a Markdown table (for docs/settings.md) and exit.
    #[arg(long, hide = true)]
    pub print_settings_markdown: bool,
}

impl PrintSettingsArgs {
    /// Prints `A`'s settings table when the flag is set; `true` means the binary should exit.
    pub fn printed<A: clap::CommandFactory>(&self) -> bool {
        if self.print_settings_markdown {
            print!("{}", markdown_table(&A::command()));
        }
        self.print_settings_markdown
    }
}

/// The Markdown table of `cmd`'s env var settings, subcommands' included, in declaration order.
pub fn markdown_table(cmd: &Command) -> String {
    let mut out = String::from("| Variable | Default | Description |\n|---|---|---|\n");
    rows(cmd, None, &mut out);
    out
}

fn rows(cmd: &Command, subcommand: Option<&str>, out: &mut String) {
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let Some(env) = arg.get_env() else { continue };
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let (description, documented) = split_documented_default(&help);
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = if arg.is_hide_env_values_set() {
            "—".to_string()
        } else if !defaults.is_empty() {
            format!("`{}`", defaults.join(","))
        } else {
            documented.unwrap_or_else(|| "—".to_string())
        };
        let description = match subcommand {
            Some(sub) => format!("`{sub}` only: {description}"),
            None => description,
        };
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            env.to_string_lossy(),
            cell(&default),
            cell(&description)
        ));
    }
    for sub in cmd.get_subcommands() {
        let path = match subcommand {
            Some(parent) => format!("{parent} {}", sub.get_name()),
            None => sub.get_name().to_string(),
        };
        rows(sub, Some(&path), out);
    }
}

/// Splits `… [default: X] …` out of a help text: (the rest, Some(X)).
fn split_documented_default(help: &str) -> (String, Option<String>) {
    const OPEN: &str = "[default: ";
    let Some(start) = help.find(OPEN) else {
        return (help.trim().to_string(), None);
    };
    let Some(len) = help[start..].find(']') else {
        return (help.trim().to_string(), None);
    };
    let value = help[start + OPEN.len()..start + len].trim().to_string();
    let (before, after) = (
        help[..start].trim_end(),
        help[start + len + 1..].trim_start(),
    );
    let glue = if after.starts_with(['.', ',', ';', ':']) || after.is_empty() {
        ""
    } else {
        " "
    };
    (
        format!("{before}{glue}{after}").trim().to_string(),
        Some(value),
    )
}

/// One table cell: a single line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser, Subcommand};

    #[derive(Debug, Parser)]
    struct Cli {
        /// Where it goes.
        #[arg(long, env = "SOME_ADDR", default_value = "0.0.0.0:9000")]
        addr: String,
        /// Who connects [default: the hostname, i.e. the pod name]. Keep it stable.
        #[arg(long, env = "SOME_CLIENT")]
        client: Option<String>,
        /// The password (never logged) [default: none].
        #[arg(long, env = "SOME_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// A | pipe and
        /// two lines.
        #[arg(long, env = "SOME_TEXT")]
        text: Option<String>,
        /// No env var: not a setting.
        #[arg(long)]
        flag: bool,
        #[command(flatten)]
        print: PrintSettingsArgs,
        #[command(subcommand)]
        command: Option<Sub>,
    }

    #[derive(Debug, Subcommand)]
    enum Sub {
        /// A mode.
        Mode {
            /// Brokers of the mode.
            #[arg(long, env = "SOME_BROKERS", default_value = "k:9092")]
            brokers: String,
        },
    }

    /// (clap drops the final period of a one-paragraph doc comment.)
    #[test]
    fn one_row_per_env_var_with_defaults_and_help() {
        assert_eq!(
            markdown_table(&Cli::command()),
            "| Variable | Default | Description |\n\
             |---|---|---|\n\
             | `SOME_ADDR` | `0.0.0.0:9000` | Where it goes |\n\
             | `SOME_CLIENT` | the hostname, i.e. the pod name | Who connects. Keep it stable |\n\
             | `SOME_PASSWORD` | — | The password (never logged) |\n\
             | `SOME_TEXT` | — | A \\| pipe and two lines |\n\
             | `SOME_BROKERS` | `k:9092` | `mode` only: Brokers of the mode |\n"
        );
    }

    #[test]
    fn the_print_flag_is_hidden_and_parsed() {
        let help = Cli::command().render_help().to_string();
        assert!(!help.contains("print-settings-markdown"), "{help}");
        let cli = Cli::try_parse_from(["x", "--print-settings-markdown"]).expect("parse");
        assert!(cli.print.print_settings_markdown);
        assert!(!cli.flag && cli.command.is_none() && cli.addr == "0.0.0.0:9000");
        assert!(cli.client.is_none() && cli.password.is_none() && cli.text.is_none());
    }
}
