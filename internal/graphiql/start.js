// Starts GraphiQL against this server's GraphQL endpoint. It is a file, not
// an inline script, so the page's Content-Security-Policy can allow only
// scripts served by Tollgate itself.
(function () {
  var root = document.getElementById('graphiql');
  var url = new URL(root.getAttribute('data-endpoint'), window.location.href).toString();
  var fetcher = GraphiQL.createFetcher({ url: url });

  // The headers editor holds a bearer token (the README has one pasted
  // there): it must not outlive the tab in localStorage, where any script
  // of this origin, or the machine's next user, reads it for 30 days.
  // shouldPersistHeaders: false keeps the editor's own text out, but
  // GraphiQL's history, favourites and tabs still save each query's
  // headers: this storage drops them from those lists.
  var lists = { 'graphiql:queries': 'queries', 'graphiql:favorites': 'favorites', 'graphiql:tabState': 'tabs' };
  function withoutHeaders(key, value) {
    if (!lists[key]) return value;
    try {
      var saved = JSON.parse(value);
      (saved[lists[key]] || []).forEach(function (entry) { entry.headers = null; });
      return JSON.stringify(saved);
    } catch (e) {
      return value;
    }
  }
  var storage = {
    getItem: function (k) { return localStorage.getItem(k); },
    setItem: function (k, v) { localStorage.setItem(k, withoutHeaders(k, v)); },
    removeItem: function (k) { localStorage.removeItem(k); },
    clear: function () { localStorage.clear(); },
    key: function (i) { return localStorage.key(i); },
    get length() { return localStorage.length; },
  };

  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      storage: storage,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
    }),
  );
})();
