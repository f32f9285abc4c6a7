// The header and footer every page shares, written once.
document.write('<header><span class="brand">Tablefor</span><a href="index.html">Home</a>' +
  '<a href="list.html">Restaurants</a><a href="giftcards.html">Gift cards</a><a href="index.html#about">About</a>' +
  '<button id="sign-in" type="button">Sign in</button><button id="sign-up" type="button">Sign up</button></header>');
