// Tablefor's restaurants and page logic. The data is fixed and the free tables come from a seeded generator, so a
// page always looks the same for the same query string: recordings of these pages are repeatable.
var RESTAURANTS = [
  {id: "trattoria-lucia", name: "Trattoria Lucia", cuisine: "Italian", city: "Boston", area: "North End", price: "$$", rating: 4.6, outdoor: true},
  {id: "osteria-nove", name: "Osteria Nove", cuisine: "Italian", city: "Chicago", area: "West Loop", price: "$$$", rating: 4.4, outdoor: false},
  {id: "sakura-house", name: "Sakura House", cuisine: "Japanese", city: "Boston", area: "Back Bay", price: "$$$", rating: 4.7, outdoor: false},
  {id: "umami-bar", name: "Umami Bar", cuisine: "Japanese", city: "Seattle", area: "Capitol Hill", price: "$$", rating: 4.3, outdoor: true},
  {id: "casa-verde", name: "Casa Verde", cuisine: "Mexican", city: "Chicago", area: "Pilsen", price: "$", rating: 4.5, outdoor: true},
  {id: "el-faro", name: "El Faro", cuisine: "Mexican", city: "Boston", area: "South End", price: "$$", rating: 4.1, outdoor: false},
  {id: "masala-street", name: "Masala Street", cuisine: "Indian", city: "Seattle", area: "Fremont", price: "$", rating: 4.2, outdoor: false},
  {id: "the-tandoor", name: "The Tandoor", cuisine: "Indian", city: "Boston", area: "Cambridge", price: "$$", rating: 4.5, outdoor: true},
  {id: "le-petit-jardin", name: "Le Petit Jardin", cuisine: "French", city: "Chicago", area: "Lincoln Park", price: "$$$", rating: 4.8, outdoor: true},
  {id: "bistro-marcel", name: "Bistro Marcel", cuisine: "French", city: "Seattle", area: "Belltown", price: "$$", rating: 4.0, outdoor: false},
  {id: "green-bowl", name: "Green Bowl", cuisine: "Vegan", city: "Boston", area: "Somerville", price: "$", rating: 4.4, outdoor: true},
  {id: "thai-orchid", name: "Thai Orchid", cuisine: "Thai", city: "Chicago", area: "Uptown", price: "$$", rating: 4.3, outdoor: false}];
var TIMES = ["5:00 PM", "5:30 PM", "6:00 PM", "6:30 PM", "7:00 PM", "7:30 PM", "8:00 PM", "8:30 PM", "9:00 PM"];

function hash(text) {
  var h = 2166136261;
  for (var i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
  return h;
}
function params() {
  var out = {};
  new URLSearchParams(location.search).forEach(function (v, k) { out[k] = v; });
  return out;
}
function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }
function find(id) { return RESTAURANTS.filter(function (r) { return r.id === id; })[0]; }
function query(q, extra) { return new URLSearchParams(Object.assign({}, q, extra)).toString(); }
// Three free tables: the asked-for time and two near it, the same ones every time for a restaurant, date and party.
function slots(r, q) {
  var at = Math.max(0, TIMES.indexOf(q.time || "7:00 PM"));
  var near = [at - 2, at - 1, at + 1, at + 2].filter(function (i) { return i >= 0 && i < TIMES.length; });
  near.splice(hash(r.id + (q.date || "") + (q.party || "")) % near.length, 1);
  return near.slice(0, 2).concat([at]).sort(function (a, b) { return a - b; }).map(function (i) { return TIMES[i]; });
}
function slotButtons(r, q) {
  return slots(r, q).map(function (t) {
    return '<button class="slot" type="button" aria-label="Book ' + esc(r.name) + " at " + t +
      '" onclick="location.href=\'book.html?' + query(q, {id: r.id, time: t}) + '\'">' + t + "</button>";
  }).join("");
}
function renderList() {
  var q = params();
  var city = (q.location || "").trim().toLowerCase();
  var prices = ["$", "$$", "$$$"].filter(function (p, i) { return document.getElementById("price-" + i).checked; });
  var outdoor = document.getElementById("outdoor").checked;
  var list = RESTAURANTS.filter(function (r) {
    return (!city || r.city.toLowerCase() === city || r.area.toLowerCase() === city) &&
      (!q.cuisine || q.cuisine === "Any cuisine" || r.cuisine === q.cuisine) &&
      (!prices.length || prices.indexOf(r.price) >= 0) && (!outdoor || r.outdoor);
  });
  var sort = document.getElementById("sort").value;
  if (sort === "Highest rated") list.sort(function (a, b) { return b.rating - a.rating; });
  if (sort === "Name") list.sort(function (a, b) { return a.name.localeCompare(b.name); });
  document.getElementById("summary").textContent = list.length + " restaurants" + (q.location ? " in " + q.location : "") +
    " · " + (q.date || "Today") + " · " + (q.time || "7:00 PM") + " · " + (q.party || "2 people");
  document.getElementById("results").innerHTML = list.length ? list.map(function (r) {
    return '<div class="card"><h3><a class="restaurant" href="restaurant.html?' + query(q, {id: r.id}) + '">' +
      esc(r.name) + "</a></h3><p>" + r.cuisine + " · " + r.area + ", " + r.city + " · " + r.price + " · " + r.rating +
      " stars" + (r.outdoor ? " · Outdoor seating" : "") + "</p>" + slotButtons(r, q) + "</div>";
  }).join("") : '<p id="no-results">No restaurants match.</p>';
}
function renderRestaurant() {
  var q = params(), r = find(q.id);
  if (!r) { document.getElementById("details").textContent = "Restaurant not found."; return; }
  document.title = "Tablefor: " + r.name;
  document.getElementById("name").textContent = r.name;
  document.getElementById("details").textContent = r.cuisine + " · " + r.area + ", " + r.city + " · " + r.price +
    " · " + r.rating + " stars";
  document.getElementById("res-id").value = r.id;
  ["date", "time", "party"].forEach(function (k) { if (q[k]) document.getElementById("res-" + k).value = q[k]; });
  document.getElementById("review-link").href = "review.html?id=" + r.id;
}
function renderBooking() {
  var q = params(), r = find(q.id);
  document.getElementById("booking-summary").textContent = (r ? r.name : "Unknown restaurant") + " · " +
    (q.date || "Today") + " · " + (q.time || "") + " · " + (q.party || "2 people");
  document.querySelectorAll("input.carry").forEach(function (input) { input.value = q[input.name] || ""; });
}
function renderConfirmed() {
  var q = params(), r = find(q.id);
  document.getElementById("confirmation").textContent = "TF" + (hash(JSON.stringify(q)) % 900000 + 100000);
  document.getElementById("booking-summary").textContent = (r ? r.name : "Unknown restaurant") + " · " +
    (q.date || "Today") + " · " + (q.time || "") + " · " + (q.party || "2 people") + " · " + (q.first || "") + " " +
    (q.last || "") + (q.occasion && q.occasion !== "No occasion" ? " · " + q.occasion : "");
}
function renderThanks(kind) {
  var q = params(), box = document.getElementById("thanks");
  if (kind === "review" && q.stars) box.textContent = "Thanks for your " + q.stars + " review of " + (find(q.id) || {name: "the restaurant"}).name + ".";
  if (kind === "gift" && q.amount) box.textContent = "A " + q.amount + " gift card is on its way to " + (q.recipient || "your friend") + ".";
}
