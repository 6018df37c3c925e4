// Offline full-text search for the fallback site: the lunr index is built at render time and
// loaded by a <script> tag (search-index.js), so it works from file:// with no network.
(function () {
  var input = document.getElementById("skinmap-search-input");
  var list = document.getElementById("skinmap-search-results");
  if (!input || !list || !window.lunr || !window.SKINMAP_SEARCH) return;
  var index = lunr.Index.load(window.SKINMAP_SEARCH.index);
  var docs = window.SKINMAP_SEARCH.docs;

  function search(text) {
    var terms = lunr.tokenizer(text).map(function (t) { return t.toString(); }).filter(Boolean);
    if (!terms.length) return [];
    return index.query(function (q) {
      terms.forEach(function (term) {
        q.term(term, { boost: 10 });  // the word itself (stemmed like the index)
        q.term(term, { usePipeline: false, wildcard: lunr.Query.wildcard.TRAILING, boost: 1 });  // as a prefix
      });
    });
  }

  function show(text) {
    list.textContent = "";
    if (text.trim().length < 2) return;
    var hits = search(text).slice(0, 12);
    if (!hits.length) {
      var none = document.createElement("li");
      none.className = "sm-no-hit";
      none.textContent = "No match.";
      list.appendChild(none);
      return;
    }
    hits.forEach(function (hit) {
      var doc = docs[hit.ref] || { title: hit.ref, page: "", excerpt: "" };
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = hit.ref;
      a.className = "sm-hit";
      a.textContent = doc.title;
      var page = document.createElement("div");
      page.className = "sm-hit-page";
      page.textContent = doc.page;
      var excerpt = document.createElement("div");
      excerpt.className = "sm-hit-excerpt";
      excerpt.textContent = doc.excerpt;
      a.appendChild(page);
      li.appendChild(a);
      li.appendChild(excerpt);
      list.appendChild(li);
    });
  }

  input.addEventListener("input", function () { show(input.value); });
  var query = new URLSearchParams(window.location.search).get("q");
  if (query) { input.value = query; show(query); }
})();
