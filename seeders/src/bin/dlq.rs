//! `dlq` — the dead-letter topic from the command line (`KAFKA_BROKERS`,
//! `KAFKA_TOPIC_NAMESPACE`; see `events::dead_letter`).
//!
//! ```text
//! dlq depth                                   open messages (after the operator cursor)
//! dlq list   [--all] [--offset N] [--group G] [--type T]
//! dlq show   --offset N                        one message with its payload and headers
//! dlq replay (--open | --offset N | --group G | --type T) [--all]
//! dlq purge  [--through N]                     mark open messages handled
//! ```
//!
//! `--all` includes messages already purged. Replay sends messages back to the topic they came
//! from; consumers skip events they have applied since, by event id.

use events::dead_letter::{DeadLetters, Filter};

const USAGE: &str = "usage: dlq depth | list [--all] [--offset N] [--group G] [--type T] | \
                     show --offset N | replay (--open | --offset N | --group G | --type T) [--all] | \
                     purge [--through N]";

fn main() -> anyhow::Result<()> {
    let brokers = platform::config::optional("KAFKA_BROKERS", "127.0.0.1:9092");
    let topic = platform::config::optional("DEAD_LETTER_TOPIC", events::topics::DEAD_LETTER);
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let mut filter = Filter::default();
    let mut through = None;
    let mut open = false;
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value; {USAGE}"))
        };
        match flag.as_str() {
            "--all" => filter.include_handled = true,
            "--open" => open = true,
            "--offset" => filter.offset = Some(value()?.parse()?),
            "--group" => filter.group = Some(value()?),
            "--type" => filter.event_type = Some(value()?),
            "--through" => through = Some(value()?.parse()?),
            _ => anyhow::bail!("unknown option {flag}; {USAGE}"),
        }
    }
    let dlq = DeadLetters::new(&brokers, &topic)?;
    match command.as_str() {
        "depth" => println!("{}", dlq.depth()?),
        "list" => {
            let letters = dlq.list(&filter)?;
            println!(
                "{:>7}  {:<24}  {:<30}  {:<28}  reason",
                "offset", "dead-lettered", "group", "type"
            );
            for l in &letters {
                let when = l
                    .timestamp_ms
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default();
                println!(
                    "{:>7}  {when:<24}  {:<30}  {:<28}  {}",
                    l.offset,
                    l.group(),
                    l.event_type(),
                    l.reason()
                );
            }
            println!("{} message(s)", letters.len());
        }
        "show" => {
            anyhow::ensure!(filter.offset.is_some(), "show needs --offset N");
            filter.include_handled = true;
            for l in dlq.list(&filter)? {
                println!(
                    "offset {}  event {}  from {}",
                    l.offset,
                    l.event_id(),
                    l.source_topic()
                );
                for (k, v) in &l.headers {
                    println!("  {k}: {v}");
                }
                println!(
                    "{}",
                    String::from_utf8_lossy(l.payload.as_deref().unwrap_or_default())
                );
            }
        }
        "replay" => {
            anyhow::ensure!(
                open || filter.offset.is_some()
                    || filter.group.is_some()
                    || filter.event_type.is_some(),
                "replay needs --open (every open message) or a filter; {USAGE}"
            );
            println!("replayed {} message(s)", dlq.replay(&filter)?);
        }
        "purge" => println!("marked {} message(s) handled", dlq.purge(through)?),
        _ => anyhow::bail!(USAGE),
    }
    Ok(())
}
