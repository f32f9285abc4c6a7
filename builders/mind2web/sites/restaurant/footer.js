document.write('<footer><a href="index.html#about">About Tablefor</a><a href="giftcards.html">Gift cards</a>' +
  '<a href="index.html#help">Help</a><a href="index.html#terms">Terms</a>' +
  '<select id="region" aria-label="Region"><option>United States</option><option>Canada</option>' +
  '<option>United Kingdom</option></select></footer>');
