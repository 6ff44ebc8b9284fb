// The API docs page: Swagger UI (served from the swagger-ui-bundle wheel) on this API's /openapi.json.
// "Authorize" takes an API key; "Try it out" then sends it as `Authorization: Bearer <key>`.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
