// Starts GraphiQL against this server's GraphQL endpoint. It is a file, not
// an inline script, so the page's Content-Security-Policy can allow only
// scripts served by Tollgate itself.
(function () {
  var root = document.getElementById('graphiql');
  var url = new URL(root.getAttribute('data-endpoint'), window.location.href).toString();
  var fetcher = GraphiQL.createFetcher({ url: url });
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    }),
  );
})();
