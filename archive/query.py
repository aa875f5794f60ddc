"""User search text -> a safe, backend-neutral query, and its FTS5 form.

Analysts type free text; it is never passed on as query syntax (FTS5 `MATCH`, ES `query_string`), since a
stray `"`, `(`, `NEAR(` or `title:` would raise or change the meaning. The small grammar:

- words are ANDed: `Panzerbrigade Litauen`;
- "quoted phrases" stay phrases: `"Panzerbrigade 45"`;
- a trailing `*` makes a prefix: `Lietuv*`, `"Panzerbrigade 4"*`;
- `OR` (upper case) between two words or phrases makes them alternatives: `Suwałki OR Suwalki Lücke`
  means `(Suwałki OR Suwalki) AND Lücke`; `AND` between two is allowed and changes nothing.

Everything else is plain text: an unbalanced quote is a separator, an `OR` or `AND` that is not between two
terms is a word, and punctuation (`(`, `:`, `^`, `-`, `+`, `NEAR(`) separates words as the tokenizer
does: `NATO-Truppen` is the phrase `nato truppen`. A term with nothing searchable in it (`*`, `(`) is dropped;
text left with no term at all is a filter-only browse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from archive.folding import fold

MAX_TERMS = 64  # beyond this, further terms are ignored (a pasted article is not a query)
_OPERATORS = ("OR", "AND")


@dataclass(frozen=True)
class Term:
    """One term: a word, or several words that must follow each other (a phrase).

    `text` is the user's text of the term, without quotes or the prefix star; the backend's analyzer splits
    it into tokens. `prefix`: the last token matches any word it begins. `quoted`: typed in quotes."""

    text: str
    prefix: bool = False
    quoted: bool = False


@dataclass(frozen=True)
class ParsedQuery:
    """AND of clauses, each an OR of terms."""

    clauses: tuple[tuple[Term, ...], ...] = ()

    @property
    def empty(self) -> bool:
        return not self.clauses


def _searchable(text: str) -> bool:
    return any(char.isalnum() for char in text)


def _tokens(text: str) -> list[Term | str]:
    """Terms and operator candidates, in order; quoted parts become quoted terms."""
    quotes = [i for i, char in enumerate(text) if char == '"']
    if len(quotes) % 2:  # unbalanced: the last quote is plain punctuation
        last = quotes.pop()
        text = text[:last] + " " + text[last + 1 :]
    parts = text.split('"')  # even indices: outside quotes; odd: inside
    out: list[Term | str] = []
    for index, part in enumerate(parts):
        if index % 2:
            following = parts[index + 1] if index + 1 < len(parts) else ""
            prefix = following.startswith("*")
            if prefix:
                parts[index + 1] = following.lstrip("*")
            body = " ".join(part.split())
            if _searchable(body):
                out.append(Term(body, prefix=prefix, quoted=True))
            continue
        for word in part.split():
            if word in _OPERATORS:
                out.append(word)
                continue
            body = word.rstrip("*")
            if _searchable(body):
                out.append(Term(body, prefix=word.endswith("*")))
    return out


def parse_query(text: str | None) -> ParsedQuery:
    """Parse user text (see the module doc). Never raises."""
    tokens = _tokens(text or "")
    clauses: list[list[Term]] = []
    join_next = False
    count = 0
    for index, token in enumerate(tokens):
        if isinstance(token, str):
            between = (
                0 < index < len(tokens) - 1
                and isinstance(tokens[index - 1], Term)
                and isinstance(tokens[index + 1], Term)
            )
            if between:
                join_next = token == "OR"
                continue
            token = Term(token)  # not between two terms: just a word
        if count == MAX_TERMS:
            break
        count += 1
        if join_next and clauses:
            clauses[-1].append(token)
        else:
            clauses.append([token])
        join_next = False
    return ParsedQuery(tuple(tuple(clause) for clause in clauses))


def fts5_term(term: Term, normalise: Callable[[str], str] = fold) -> str:
    """A term as an FTS5 string: the only special character inside one is `"`, and terms never hold one."""
    text = normalise(term.text).replace('"', " ")
    return f'"{text}"' + (" *" if term.prefix else "")


def to_fts5(parsed: ParsedQuery) -> str:
    """The FTS5 MATCH expression of a parsed query ("" when empty)."""
    clauses = []
    for clause in parsed.clauses:
        terms = [fts5_term(term) for term in clause]
        clauses.append(terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")")
    return " AND ".join(clauses)
