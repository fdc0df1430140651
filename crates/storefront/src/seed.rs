//! The demo catalog: public-domain classics from a data file shipped in the
//! binary, and as many generated books after them as a measurement needs.

pub mod generated;

use futures::{StreamExt, TryStreamExt};
use sqlx::AnyPool;

use crate::domain::{Cents, Email, HOUSE_SELLER_NAME, parse_stock};
use crate::password::UNUSABLE_HASH;
use crate::store::books::{self, BookFields};
use crate::store::users;

const CLASSICS: &str = include_str!("../data/classics.tsv");
const DEMO_SELLER_EMAIL: &str = "classics@bookstore.invalid";

pub fn demo_books() -> anyhow::Result<Vec<BookFields>> {
    CLASSICS
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            parse_row(line).map_err(|e| anyhow::anyhow!("classics.tsv line {}: {e}", i + 2))
        })
        .collect()
}

fn parse_row(line: &str) -> Result<BookFields, String> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [title, author, price, stock, description] = fields[..] else {
        return Err(format!(
            "expected 5 tab-separated fields, found {}",
            fields.len()
        ));
    };
    Ok(BookFields {
        title: title.trim().to_string(),
        author: author.trim().to_string(),
        description: description.trim().to_string(),
        price: Cents::parse_price(price)?,
        stock: parse_stock(stock)?,
    })
}

/// Adds the demo catalog when the shop has no books; returns how many were added.
pub async fn seed_if_empty(pool: &AnyPool) -> anyhow::Result<usize> {
    if books::any_listed(pool).await? {
        return Ok(0);
    }
    let seller = demo_seller(pool).await?;
    let books = demo_books()?;
    for book in &books {
        books::insert(pool, seller, book).await?;
    }
    Ok(books.len())
}

/// Books per INSERT: seven values each stays under SQLite's 32,766 parameters.
pub const BATCH: usize = 2_000;
/// INSERTs in flight at once: one fills the next batch while the database
/// writes the other.
const PARALLEL: usize = 2;

/// Makes the catalog `target` books long: the classics first when the shop is
/// empty, then generated books (`generated`). Returns how many were added;
/// `progress` hears the count after every batch.
pub async fn fill_to(pool: &AnyPool, target: u64, progress: impl Fn(u64)) -> anyhow::Result<u64> {
    let classics = seed_if_empty(pool).await? as u64;
    let listed = books::count(pool).await? as u64;
    let missing = target.saturating_sub(listed);
    if missing == 0 {
        return Ok(classics);
    }
    let seller = demo_seller(pool).await?;
    // Seeded by the count, so a second fill adds other books than the first.
    let mut generator = generated::BookGenerator::new(listed);
    let batches = (0..missing).step_by(BATCH).map(move |start| {
        let size = (missing - start).min(BATCH as u64);
        (0..size).map(|_| generator.book()).collect::<Vec<_>>()
    });
    let mut added = 0;
    let mut inserts = futures::stream::iter(batches)
        .map(|batch| async move {
            books::insert_many(pool, seller, &batch).await?;
            Ok::<_, sqlx::Error>(batch.len() as u64)
        })
        .buffer_unordered(PARALLEL);
    while let Some(inserted) = inserts.try_next().await? {
        added += inserted;
        progress(listed + added);
    }
    Ok(classics + added)
}

/// The account the classics are listed under; nobody can log in to it.
async fn demo_seller(pool: &AnyPool) -> anyhow::Result<i64> {
    let email = Email::parse(DEMO_SELLER_EMAIL).map_err(anyhow::Error::msg)?;
    if let Some(user) = users::find_by_email(pool, &email).await? {
        return Ok(user.id);
    }
    Ok(users::insert(pool, HOUSE_SELLER_NAME, &email, UNUSABLE_HASH).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_catalog_parses_and_has_at_least_100_books() {
        let books = super::demo_books().unwrap();
        assert!(books.len() >= 100, "only {} books", books.len());
        assert!(
            books.iter().any(|b| b.stock == 0),
            "some classics should show as sold out"
        );
    }
}
