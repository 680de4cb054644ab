// Starts GraphiQL (with the explorer plugin) on the server's /graphql, from files the server ships.
(function () {
  "use strict";
  var parameters = new URLSearchParams(window.location.search);
  var url = window.location.origin + window.location.pathname;
  var fetcher = GraphiQL.createFetcher({ url: url });
  var placeholder = '{\n  "Authorization": "Bearer inv_..."\n}';

  function App() {
    var explorer = GraphiQLPluginExplorer.explorerPlugin();
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [explorer],
      defaultQuery: parameters.get("q") || "{\n  registries {\n    name\n  }\n}\n",
      defaultHeaders: placeholder,
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(React.createElement(App));
})();
