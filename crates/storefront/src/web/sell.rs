//! Sellers' pages: any logged-in user lists, adds, edits and deletes their own books.

use askama::Template;
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::page::{
    CsrfForm, FieldErrors, NoPage, Page, SignedIn, flash, parse_id, render, render_as,
};
use crate::app::state::AppState;
use crate::domain::{Cents, bounded_text, one_line_text, parse_stock};
use crate::error::{AppError, AppResult};
use crate::i18n::t_args;
use crate::search;
use crate::store::books::{self, Book, BookFields};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/book/my_books", get(my_books))
        .route("/book/add_book", get(add_page).post(add))
        .route("/book/edit_book/{id}", get(edit_page).post(edit))
        .route("/book/delete_book/{id}", post(delete))
}

#[derive(Template)]
#[template(path = "sell/my_books.html")]
struct MyBooksPage {
    page: Page,
    rows: Vec<Book>,
}

async fn my_books(me: SignedIn) -> AppResult<Response> {
    let rows = books::by_seller(&me.app.db.pool(), me.user.id).await?;
    render(&MyBooksPage {
        page: me.page,
        rows,
    })
}

/// The form as typed, so a refused form comes back with what the seller wrote.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct BookForm {
    title: String,
    author: String,
    description: String,
    price: String,
    stock: String,
    /// The stock when the edit form was shown (hidden): a save is refused if
    /// copies were sold or released since, instead of writing over them.
    stock_seen: String,
}

impl BookForm {
    fn of(book: &Book) -> BookForm {
        BookForm {
            title: book.title.clone(),
            author: book.author.clone(),
            description: book.description.clone(),
            price: book.price().plain(),
            stock: book.stock.to_string(),
            stock_seen: book.stock.to_string(),
        }
    }

    /// `None` when the form came without it (a client of its own): then the
    /// stock typed is written as it is.
    fn stock_seen(&self) -> Option<i64> {
        self.stock_seen.trim().parse().ok()
    }

    fn parse(&self) -> Result<BookFields, FieldErrors> {
        let mut errors = FieldErrors::default();
        let title = errors.check(
            "title",
            one_line_text(&self.title, 150, "invalid-title-empty"),
        );
        let author = errors.check(
            "author",
            one_line_text(&self.author, 100, "invalid-author-empty"),
        );
        let description = errors.check("description", bounded_text(&self.description, 5000, ""));
        let price = errors.check("price", Cents::parse_price(&self.price));
        let stock = errors.check("stock", parse_stock(&self.stock));
        match (title, author, description, price, stock) {
            (Some(title), Some(author), Some(description), Some(price), Some(stock)) => {
                Ok(BookFields {
                    title,
                    author,
                    description,
                    price,
                    stock,
                })
            }
            _ => Err(errors),
        }
    }
}

#[derive(Template)]
#[template(path = "sell/book_form.html")]
struct BookFormPage {
    page: Page,
    /// The catalogue id of the page's heading.
    heading: &'static str,
    action: String,
    form: BookForm,
    errors: FieldErrors,
}

async fn add_page(me: SignedIn) -> AppResult<Response> {
    render(&BookFormPage {
        page: me.page,
        heading: "sell-add-heading",
        action: "/book/add_book".into(),
        form: BookForm {
            stock: "1".into(),
            ..Default::default()
        },
        errors: FieldErrors::default(),
    })
}

async fn add(me: SignedIn, CsrfForm(form): CsrfForm<BookForm>) -> AppResult<Response> {
    let fields = match form.parse() {
        Ok(fields) => fields,
        Err(errors) => {
            return refuse(
                me.page,
                "sell-add-heading",
                "/book/add_book".into(),
                form,
                errors,
            );
        }
    };
    let (id, change) = books::insert(&me.app.db.pool(), me.user.id, &fields).await?;
    me.app.book_changed(change).await;
    search::remember_own_change(&me.session, change).await;
    flash(
        &me.session,
        "success",
        t_args("sell-added", &[("title", fields.title.as_str().into())]),
    )
    .await?;
    tracing::info!(book_id = id, seller_id = me.user.id, "book listed");
    Ok(Redirect::to("/book/my_books").into_response())
}

fn refuse(
    page: Page,
    heading: &'static str,
    action: String,
    form: BookForm,
    errors: FieldErrors,
) -> AppResult<Response> {
    render_as(
        StatusCode::UNPROCESSABLE_ENTITY,
        &BookFormPage {
            page,
            heading,
            action,
            form,
            errors,
        },
    )
}

/// The edit form again, as the seller typed it, when copies were sold (or
/// released) while it was open: their stock figure would have overwritten
/// that change. The form now carries the current stock as the one seen.
fn stock_moved(page: Page, id: i64, mut form: BookForm, now: i64) -> AppResult<Response> {
    let mut errors = FieldErrors::default();
    errors.add(
        "stock",
        t_args("sell-stock-moved", &[("stock", now.into())]),
    );
    form.stock_seen = now.to_string();
    let action = format!("/book/edit_book/{id}");
    refuse(page, "sell-edit-heading", action, form, errors).map(|mut response| {
        *response.status_mut() = StatusCode::CONFLICT;
        response
    })
}

/// The seller's own book, by the id in the path; another seller's is 403, a
/// missing one 404.
async fn owned_book(app: &AppState, raw_id: &str, seller_id: i64) -> AppResult<Book> {
    let id = parse_id(raw_id)?;
    let book = books::get(&app.db.pool(), id)
        .await?
        .ok_or(AppError::NotFound)?;
    if book.seller_id != seller_id {
        return Err(AppError::Forbidden);
    }
    Ok(book)
}

async fn edit_page(me: SignedIn, Path(id): Path<String>) -> AppResult<Response> {
    let book = owned_book(&me.app, &id, me.user.id).await?;
    render(&BookFormPage {
        page: me.page,
        heading: "sell-edit-heading",
        action: format!("/book/edit_book/{}", book.id),
        form: BookForm::of(&book),
        errors: FieldErrors::default(),
    })
}

async fn edit(
    me: SignedIn,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<BookForm>,
) -> AppResult<Response> {
    let id = owned_book(&me.app, &id, me.user.id).await?.id;
    let fields = match form.parse() {
        Ok(fields) => fields,
        Err(errors) => {
            return refuse(
                me.page,
                "sell-edit-heading",
                format!("/book/edit_book/{id}"),
                form,
                errors,
            );
        }
    };
    // Ownership (and the stock the seller saw) is checked again in the UPDATE itself.
    let seen = form.stock_seen();
    match books::update_owned(&me.app.db.pool(), id, me.user.id, &fields, seen).await? {
        Some(change) => {
            me.app.book_changed(change).await;
            search::remember_own_change(&me.session, change).await;
        }
        None => {
            // Still the seller's (or 403/404 now): then the stock was not the
            // one seen when the UPDATE ran, even if it is again by now.
            let book = owned_book(&me.app, &id.to_string(), me.user.id).await?;
            if seen.is_some() {
                return stock_moved(me.page, id, form, book.stock);
            }
            me.app.catalog_changed().await;
        }
    }
    flash(
        &me.session,
        "success",
        t_args("sell-updated", &[("title", fields.title.as_str().into())]),
    )
    .await?;
    Ok(Redirect::to("/book/my_books").into_response())
}

async fn delete(
    me: SignedIn<NoPage>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> AppResult<Response> {
    let book = owned_book(&me.app, &id, me.user.id).await?;
    let Some(change) = books::delete_owned(&me.app.db.pool(), book.id, me.user.id).await? else {
        return Err(AppError::Forbidden);
    };
    me.app.book_changed(change).await;
    search::remember_own_change(&me.session, change).await;
    flash(
        &me.session,
        "success",
        t_args("sell-removed", &[("title", book.title.as_str().into())]),
    )
    .await?;
    Ok(Redirect::to("/book/my_books").into_response())
}
