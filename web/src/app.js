// The site's one script: index.html is the signed-in member's token page, guest.html the Teams
// meeting guest page (no sign-in). Each page names itself in <body data-page>.

import { startGuestPage } from "./guest-page.js";
import { startMemberPage } from "./member-page.js";

const page = document.body.dataset.page === "guest" ? startGuestPage() : startMemberPage();

// A proactive refresh runs on the credential's own timer; if it fails, the refresher has already
// told the person, so the browser need not report it again.
window.addEventListener("unhandledrejection", (event) => {
  if (!event.reason?.shownToPerson) {
    page.showError(event.reason);
  }
  event.preventDefault();
});
