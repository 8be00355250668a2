// The box office's Print button (templates/bookings/box_office_tickets.html): the browser's print dialog, which
// static/css/print_tickets.css lays out one ticket per page. A script of its own: the site's CSP runs no inline one.

document.getElementById('print-tickets')?.addEventListener('click', () => window.print());
