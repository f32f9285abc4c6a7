// Skyhop's data and page logic. Everything is computed from the query string with a seeded generator, so the same
// search always shows the same flights (no clock, no Math.random): recordings of these pages are repeatable.
var AIRPORTS = [["Boston", "BOS"], ["New York", "JFK"], ["Chicago", "ORD"], ["Denver", "DEN"],
  ["Seattle", "SEA"], ["San Francisco", "SFO"], ["Los Angeles", "LAX"], ["Miami", "MIA"], ["Atlanta", "ATL"],
  ["Dallas", "DFW"], ["Toronto", "YYZ"], ["London", "LHR"]];
var AIRLINES = ["Skyhop", "Northwind Air", "Bluejay Airways"];
var CABINS = {"Economy": 1, "Premium economy": 1.6, "Business": 2.8, "First": 4};

function hash(text) {
  var h = 2166136261;
  for (var i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
  return h;
}
function generator(seed) {
  return function () {
    seed = (seed + 0x6D2B79F5) >>> 0;
    var t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function params() {
  var out = {};
  new URLSearchParams(location.search).forEach(function (v, k) { out[k] = v; });
  return out;
}
function airport(text) {
  var t = (text || "").trim().toLowerCase();
  for (var i = 0; i < AIRPORTS.length; i++) {
    var a = AIRPORTS[i];
    if (t === a[0].toLowerCase() || t === a[1].toLowerCase() || t === (a[0] + " (" + a[1] + ")").toLowerCase()) return a;
  }
  return null;
}
function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }
function clock(minutes) {
  var h = Math.floor(minutes / 60) % 24, m = minutes % 60, ampm = h < 12 ? "AM" : "PM";
  return ((h + 11) % 12 + 1) + ":" + (m < 10 ? "0" : "") + m + " " + ampm;
}
function flights(q) {
  var from = airport(q.from), to = airport(q.to);
  if (!from || !to || from === to) return [];
  var rand = generator(hash(from[1] + to[1] + (q.depart || "")));
  var list = [];
  for (var i = 0; i < 8; i++) {
    var stops = rand() < 0.45 ? 0 : (rand() < 0.7 ? 1 : 2);
    var dep = 300 + Math.floor(rand() * 56) * 15, dur = 95 + Math.floor(rand() * 30) * 10 + stops * 75;
    var base = 89 + Math.floor(rand() * 380);
    var airline = AIRLINES[Math.floor(rand() * AIRLINES.length)];
    list.push({number: airline.slice(0, 2).toUpperCase() + (100 + Math.floor(rand() * 900)), airline: airline,
      depart: dep, duration: dur, stops: stops, price: Math.round(base * (CABINS[q.cabin] || 1))});
  }
  return list;
}
function summary(q) {
  return esc(q.from) + " to " + esc(q.to) + " · " + esc(q.depart || "any date") + " · " +
    esc(q.passengers || "1") + " passenger(s) · " + esc(q.cabin || "Economy");
}
function renderResults() {
  var q = params(), list = flights(q), box = document.getElementById("results");
  document.getElementById("summary").innerHTML = summary(q);
  var sort = document.getElementById("sort").value;
  var only = {};
  ["nonstop", "one-stop"].forEach(function (id) { only[id] = document.getElementById(id).checked; });
  var airlines = AIRLINES.filter(function (a, i) { return document.getElementById("airline-" + i).checked; });
  if (q.nonstop === "on") only.nonstop = true;
  list = list.filter(function (f) {
    if (only.nonstop || only["one-stop"]) {
      if (!((only.nonstop && f.stops === 0) || (only["one-stop"] && f.stops === 1))) return false;
    }
    return airlines.length === 0 || airlines.indexOf(f.airline) >= 0;
  });
  var key = {"Lowest price": "price", "Shortest duration": "duration", "Earliest departure": "depart"}[sort];
  list.sort(function (a, b) { return a[key] - b[key] || a.number.localeCompare(b.number); });
  if (!list.length) { box.innerHTML = '<p id="no-results">No flights match this search.</p>'; return; }
  box.innerHTML = list.map(function (f) {
    var stops = f.stops === 0 ? "Nonstop" : f.stops + " stop" + (f.stops > 1 ? "s" : "");
    var next = new URLSearchParams(Object.assign({}, q, {flight: f.number, price: f.price})).toString();
    return '<div class="flight" data-flight="' + f.number + '"><span class="times">' + clock(f.depart) + " – " +
      clock(f.depart + f.duration) + '</span><span class="airline">' + f.airline + " " + f.number +
      '</span><span class="duration">' + Math.floor(f.duration / 60) + "h " + (f.duration % 60) + "m</span>" +
      '<span class="stops">' + stops + '</span><span class="price">$' + f.price + "</span>" +
      '<a class="details" href="#' + f.number + '">Details</a>' +
      '<button class="select-flight" type="button" aria-label="Select flight ' + f.number +
      '" onclick="location.href=\'passengers.html?' + next + '\'">Select</button></div>';
  }).join("");
}
function renderTrip() {
  var q = params();
  document.getElementById("trip").innerHTML = summary(q) + " · flight " + esc(q.flight || "") + " · $" +
    esc(q.price || "");
  document.querySelectorAll("input.carry").forEach(function (input) { input.value = q[input.name] || ""; });
}
function renderConfirmation() {
  var q = params();
  var code = "";
  var rand = generator(hash(JSON.stringify(q)));
  for (var i = 0; i < 6; i++) code += "ABCDEFGHJKLMNPQRSTUVWXYZ23456789".charAt(Math.floor(rand() * 32));
  document.getElementById("reference").textContent = code;
  document.getElementById("traveller").textContent = (q.title || "") + " " + (q.first || "") + " " + (q.last || "");
  document.getElementById("trip").innerHTML = summary(q) + " · flight " + esc(q.flight || "");
  document.getElementById("extras").textContent = "Seat: " + (q.seat || "No preference") + " · Checked bags: " +
    (q.bags || "0") + (q.insurance === "on" ? " · Travel insurance" : "");
}
function renderStatus() {
  var q = params(), box = document.getElementById("status-result");
  if (!q.number) return;
  var rand = generator(hash(q.number.toUpperCase() + (q.date || "")));
  var states = ["On time", "Delayed 25 minutes", "Boarding", "Landed", "On time"];
  box.innerHTML = "<h3>Flight " + esc(q.number.toUpperCase()) + " on " + esc(q.date || "") + "</h3><p id=\"status\">" +
    states[Math.floor(rand() * states.length)] + "</p><p>Gate " + "ABC".charAt(Math.floor(rand() * 3)) +
    (1 + Math.floor(rand() * 30)) + '</p><button id="notify" type="button">Notify me of changes</button>';
}
function renderBooking() {
  var q = params(), box = document.getElementById("booking");
  if (!q.ref) return;
  box.innerHTML = "<h3>Booking " + esc(q.ref.toUpperCase()) + " for " + esc(q.last || "") + "</h3>" +
    '<label for="change-seat">Seat</label><select id="change-seat"><option>No preference</option><option>Window</option>' +
    '<option>Aisle</option></select><label for="add-bags">Checked bags</label><select id="add-bags"><option>0</option>' +
    '<option>1</option><option>2</option></select><button id="save-changes" type="button" ' +
    'onclick="document.getElementById(\'saved\').textContent=\'Changes saved\'">Save changes</button>' +
    '<button id="cancel-booking" type="button">Cancel booking</button><p id="saved"></p>';
}
