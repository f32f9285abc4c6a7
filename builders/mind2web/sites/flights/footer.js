document.write('<footer><a href="help.html">Contact us</a><a href="help.html#baggage">Baggage</a>' +
  '<a href="help.html#refunds">Refunds</a><a href="help.html#privacy">Privacy</a>' +
  '<select id="language" aria-label="Language"><option>English</option><option>Español</option>' +
  '<option>Français</option></select></footer>');
