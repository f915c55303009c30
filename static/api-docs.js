// Renders the API reference with the vendored Swagger UI. Requests made from it run with the
// browser's session, so unsafe methods carry the page's CSRF token like htmx requests do.
(function () {
  "use strict";
  function start() {
    var root = document.getElementById("api-reference");
    if (!root || typeof SwaggerUIBundle !== "function") return;
    var csrf = document.querySelector('meta[name="csrf-token"]');
    SwaggerUIBundle({
      url: root.dataset.specUrl,
      domNode: root,
      deepLinking: true,
      docExpansion: "list",
      defaultModelsExpandDepth: 0,
      displayRequestDuration: true,
      filter: true,
      tryItOutEnabled: false,
      // Swagger UI would otherwise fetch a badge from validator.swagger.io.
      validatorUrl: null,
      requestInterceptor: function (req) {
        if (csrf && !/^(GET|HEAD|OPTIONS)$/i.test(req.method || "GET")) {
          req.headers["X-CSRF-Token"] = csrf.content;
        }
        return req;
      },
      onComplete: function () {
        root.removeAttribute("aria-busy");
      },
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
