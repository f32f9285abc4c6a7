// The header and footer every page shares, written once.
document.write('<header><span class="brand">Skyhop</span><a href="index.html">Book</a>' +
  '<a href="index.html#deals">Deals</a><a href="status.html">Flight status</a><a href="manage.html">Manage booking</a>' +
  '<a href="help.html">Help</a><button id="sign-in" type="button">Sign in</button></header>');
