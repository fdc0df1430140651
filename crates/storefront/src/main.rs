//! `storefront`: parses the command line and calls the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use storefront::app::config::Config;
use storefront::app::startup::Application;
use storefront::app::{healthcheck, telemetry};
use storefront::db::Db;
use storefront::domain::Email;
use storefront::{seed, store};

const ENVIRONMENT: &str = "\
Configuration (environment variables; secrets also accept NAME_FILE, a file to read):
  DATABASE_URL      sqlite://bookstore.db (default, created) or mysql://user:pass@host/db
  REDIS_URL         redis://host:6379 for sessions, carts and rate limits; unset: in memory
  LISTEN_ADDR       public HTTP address (default 127.0.0.1:8080)
  METRICS_ADDR      Prometheus /metrics address (default 127.0.0.1:9464)
  PUBLIC_ORIGIN     e.g. https://shop.example.com: trusted form origin; https makes cookies Secure
  REPLICA_ID        sent as X-Served-By (default: host name)
  LOG_FORMAT        text (default) or json
  ORDER_TTL_SECS    how long an unpaid order holds its stock (default 1800)
  EXPIRY_INTERVAL_SECS  how often expired orders are released (default 30)
  SEED_DEMO         true/false: fill an empty shop with the demo catalog (default: true on SQLite)
  SHUTDOWN_DRAIN_MS     how long /readyz says 503 before the listener closes (default 0)
  DATABASE_WAIT_SECS    how long start-up waits for the database (default 120)
  DATABASE_MAX_CONNECTIONS  database pool size (default 16)
  CATALOG_CACHE_ENTRIES catalog and book pages each replica caches (default 2048; 0: none)
  SEARCH_INDEX          a search index in this replica, built from the database (default true)
  SEARCH_POLL_MS        how often the index reads the catalog's change feed (default 100)
  SEARCH_MAX_LAG_MS     behind the feed longer than this, searches go to the database (default 3000)
  TRUSTED_PROXIES   proxies whose X-Forwarded-For names the client: ranges, addresses, host names
                    (looked up every 5 s; the stack gives `tasks.proxy`); default none
  LOGIN_MAX_PER_ADDRESS, LOGIN_MAX_PER_ACCOUNT, LOGIN_WINDOW_SECS  login attempts (default 20, 5 per 900 s)
  REGISTER_MAX_PER_ADDRESS, REGISTER_WINDOW_SECS  new accounts per client address (default 10 per 3600 s)
  PASSWORD_HASH_QUEUE   password hashes queued or running; beyond it 503 at once (default 16)
  MAX_OPEN_ORDERS, MAX_HELD_PER_TITLE  unpaid orders and copies of one title per shopper (default 5, 10)
  NEW_BUYERS_MAX_SHOP_PERCENT, NEW_BUYERS_MAX_TITLE_PERCENT  what shoppers who never paid
                        may hold together, in % of the shop's and of a title's copies (default 20, 50);
                        a new buyer's order beyond it waits unreserved, payment takes the copies
  HTTP_HEADER_TIMEOUT_SECS, HTTP_BODY_TIMEOUT_SECS  slow clients are cut (default 10, 10)
  HTTP_MAX_CONNECTIONS  open connections (default 4096)
  HTTP_MAX_CONNECTIONS_PER_ADDRESS  open connections of one client address, trusted proxies
                    not counted (default 64; beyond it a bare 429)
  HTTP_MAX_HEADER_BYTES  the longest request head (default 16384; longer: 431)
  SMTP_URL[_FILE]   where mail goes: smtp://user@host:587?tls=required, smtps://user@host:465;
                    unset: mail (reset and confirmation links, receipts, sale notices) is written to the log
  SMTP_PASSWORD[_FILE]  the SMTP password, for the user named in SMTP_URL
  MAIL_FROM         the sender (default `Bookstore <no-reply@bookstore.localhost>`)
  MAIL_SENDER, MAIL_POLL_MS  this replica sends the outbox's mail, looking every N ms (default true, 1000)
  MAIL_LEASE_SECS   how long a sender holds the mail it took; a dead replica's mail waits this
                    long for another (default 60; the SMTP timeout is at most half of it)
  MAIL_KEEP_SENT_DAYS  delivered mail kept in the outbox, then pruned (default 30)
  MAIL_MAX_ATTEMPTS, MAIL_RETRY_BASE_MS  tries before a mail is dead; the first retry's delay,
                    doubling after (default 8, 5000)
  PASSWORD_RESET_TTL_SECS  how long a reset link works, once (default 1800)
  PASSWORD_RESETS_PER_ACCOUNT_HOUR, PASSWORD_RESETS_PER_ADDRESS_HOUR  reset mails per account,
                    requests per client address (default 3, 20)
  ADDRESS_VERIFICATION  `required`: only accounts whose address is confirmed through a mailed
                    link hold copies in unpaid orders; `off`. Default: required when SMTP_URL is set
  ADDRESS_VERIFICATION_TTL_SECS, ADDRESS_VERIFICATION_MAILS_PER_HOUR  how long a confirmation
                    link works, once; links per account per hour (default 172800, 3)";

/// The Bookstore shop: an HTTP storefront over SQLite (alone) or MySQL + Redis (a fleet).
#[derive(Parser)]
#[command(version, after_help = ENVIRONMENT)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the shop (the default): migrates, then listens until SIGTERM or Ctrl-C.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Fill an empty shop with the demo catalog of public-domain classics.
    SeedDemo {
        /// Then add generated books until the shop lists this many (for
        /// measuring it at the size of a large bookseller; 1,000,000 takes
        /// about a minute on MariaDB). Run again, it adds nothing.
        #[arg(long, value_name = "N")]
        books: Option<u64>,
    },
    /// Make the user with this e-mail an administrator (they must have registered).
    GrantAdmin {
        /// The e-mail address the user registered with.
        email: String,
    },
    /// Exit 0 when this instance answers /healthz with 200 within 2 s (liveness, for HEALTHCHECK).
    Healthcheck,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("storefront: configuration error: {err:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    match run(cli.command.unwrap_or(Command::Serve), config).await {
        Ok(code) => code,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("storefront: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Progress of a long fill, every 100,000 books.
fn report_fill(listed: u64) {
    if listed % 100_000 < seed::BATCH as u64 {
        eprintln!("storefront: {listed} books listed");
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            Application::build(config)
                .await?
                .run_until_stopped()
                .await?;
        }
        Command::Migrate => {
            connect(&config).await?.migrate().await?;
            println!("migrations applied");
        }
        Command::SeedDemo { books } => {
            let db = connect(&config).await?;
            db.migrate().await?;
            let added = match books {
                None => seed::seed_if_empty(&db.pool()).await? as u64,
                Some(target) => seed::fill_to(&db.pool(), target, report_fill).await?,
            };
            match added {
                0 => println!("the shop already has the books asked for: nothing added"),
                n => println!("added {n} books"),
            }
        }
        Command::GrantAdmin { email } => {
            let email = Email::parse(&email).map_err(anyhow::Error::msg)?;
            let db = connect(&config).await?;
            if !store::users::grant_admin(&db.pool(), &email).await? {
                eprintln!("no user registered with {}", email.as_str());
                return Ok(ExitCode::FAILURE);
            }
            println!("{} is now an administrator", email.as_str());
        }
        Command::Healthcheck => {
            let addr = healthcheck::probe_addr(config.listen_addr);
            let alive = healthcheck::is_alive(addr, Duration::from_secs(2))
                .await
                .unwrap_or(false);
            return Ok(if alive {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn connect(config: &Config) -> anyhow::Result<Db> {
    Db::connect(&config.database_url, 2, config.database_wait).await
}
