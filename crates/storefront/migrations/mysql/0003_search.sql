-- Search by the words of a title or an author's name, ranked by relevance,
-- through a FULLTEXT index instead of `LIKE '%…%'` (a full scan).
--
-- Stopwords off: InnoDB binds its stopword list to an index when the index is
-- made, and a required stopword ("+the*") would then match nothing, so
-- "The Hobbit" found no book. Every word of three letters or more is indexed.
SET SESSION innodb_ft_enable_stopword = OFF;
ALTER TABLE books ADD FULLTEXT INDEX books_search (title, author);
SET SESSION innodb_ft_enable_stopword = ON;

-- Sorting by author reads (author, title, id) in index order: with `author`
-- alone every book of the shop was sorted to show the first page.
ALTER TABLE books DROP INDEX books_author, ADD INDEX books_author (author, title);
