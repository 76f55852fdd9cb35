"""One SPARQL client for an HTTP endpoint and an embedded on-disk Oxigraph store.

`SparqlClient.select` runs a `Select` (kg/sparql.py) and returns its rows in the SPARQL JSON
results shape (``var -> {type, value, xml:lang, datatype}``) from either backend, all or
nothing: a failed query raises `KGStoreError`. Over HTTP (SPARQL 1.1 protocol, POST, JSON
results) a transient failure (refused, 5xx, timeout) is retried with a doubling wait; the
embedded store gets its single-term inputs as pyoxigraph substitutions.

    client = SparqlClient("http://localhost:7878/query")   # or SparqlClient(store_dir)
    rows = client.select(Select("SELECT ?p WHERE { ?s ?p ?o } LIMIT 1"))
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pyoxigraph

from kg.errors import KGStoreError
from kg.sparql import Row, Select

_HEADERS = {
    "Accept": "application/sparql-results+json",
    "Content-Type": "application/x-www-form-urlencoded",
}


class SparqlClient:
    """SELECT queries against ``source``, an endpoint URL (``http(s)://...``) or a store folder.

    Args:
        source: a SPARQL endpoint URL or the folder of an on-disk Oxigraph store.
        timeout_s: seconds one HTTP query may take before it fails (the embedded store has none).
        retries: further tries after a transient HTTP failure.
        backoff_s: wait before the first retry; doubled after each.
    """

    def __init__(
        self, source: str | Path, timeout_s: float = 30.0, retries: int = 3, backoff_s: float = 0.5
    ):
        self.source = str(source)
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self.attempts = 0  # HTTP requests sent, retries included
        self._store: pyoxigraph.Store | None = None
        if not self.is_http:
            if not Path(self.source).is_dir():
                raise KGStoreError(
                    f"{self.source!r} is neither an http(s) SPARQL endpoint nor a store folder; "
                    "create one with `kgfuse kg load FILES --backend oxigraph --store DIR`"
                )
            try:
                self._store = pyoxigraph.Store.read_only(self.source)
            except OSError as e:
                raise KGStoreError(f"cannot open the Oxigraph store {self.source}: {e}") from e

    @property
    def is_http(self) -> bool:
        return self.source.startswith(("http://", "https://"))

    def __repr__(self) -> str:
        return f"SparqlClient({self.source!r})"

    def select(self, query: Select | str) -> list[Row]:
        """Rows of a SELECT query (a bare string: a query with no inputs)."""
        if isinstance(query, str):
            query = Select(query)
        if self._store is not None:
            return self._embedded_select(self._store, query)
        return self._http_select(query.render())

    def _embedded_select(self, store: pyoxigraph.Store, query: Select) -> list[Row]:
        bind: dict[
            pyoxigraph.Variable,
            pyoxigraph.NamedNode | pyoxigraph.BlankNode | pyoxigraph.Literal | pyoxigraph.Triple,
        ] = {pyoxigraph.Variable(name): term for name, term in query.bind.items()}
        try:
            solutions = store.query(query.render(inline_bind=False), substitutions=bind or None)
            if not isinstance(solutions, pyoxigraph.QuerySolutions):
                raise ValueError("not a SELECT query")
            names = [v.value for v in solutions.variables]
            return [_row(solution, names) for solution in solutions]
        except (OSError, SyntaxError, ValueError, RuntimeError) as e:
            raise KGStoreError(f"query on the store {self.source} failed: {e}") from e

    def _http_select(self, text: str) -> list[Row]:
        data = urllib.parse.urlencode({"query": text}).encode()
        wait = self.backoff_s
        for attempt in range(self.retries + 1):
            self.attempts += 1
            request = urllib.request.Request(self.source, data=data, headers=_HEADERS)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    body = response.read()
                return json.loads(body)["results"]["bindings"]
            except urllib.error.HTTPError as e:
                if e.code < 500:
                    detail = e.read().decode(errors="replace")[:300]
                    raise KGStoreError(
                        f"SPARQL endpoint {self.source} refused the query (HTTP {e.code}): {detail}"
                    ) from e
                why = f"HTTP {e.code}"
            except TimeoutError as e:
                why = f"no answer within timeout_s={self.timeout_s}s ({e})"
            except urllib.error.URLError as e:
                if isinstance(e.reason, TimeoutError):
                    why = f"no answer within timeout_s={self.timeout_s}s ({e.reason})"
                else:
                    why = str(e.reason)
            except (OSError, ValueError, KeyError) as e:
                why = f"unreadable answer ({e})"
            if attempt < self.retries:
                time.sleep(wait)
                wait *= 2
        raise KGStoreError(
            f"SPARQL endpoint {self.source} failed after {self.retries + 1} tries: {why}; "
            "check that the server runs and the URL is right, or raise timeout_s"
        )


def _row(solution: pyoxigraph.QuerySolution, names: list[str]) -> Row:
    """One pyoxigraph solution in the SPARQL JSON results shape."""
    row: Row = {}
    for name in names:
        term = solution[name]
        if term is None:
            continue
        if isinstance(term, pyoxigraph.NamedNode):
            row[name] = {"type": "uri", "value": term.value}
        elif isinstance(term, pyoxigraph.BlankNode):
            row[name] = {"type": "bnode", "value": term.value}
        elif isinstance(term, pyoxigraph.Literal):
            row[name] = {"type": "literal", "value": term.value}
            if term.language:
                row[name]["xml:lang"] = term.language
            row[name]["datatype"] = term.datatype.value
        else:
            raise ValueError(f"the store answered an RDF-star triple for ?{name}: {term}")
    return row
