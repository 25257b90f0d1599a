// musicbench leaderboard: sortable tables. Every cell carries its sort key in data-value (written by
// musicbench.leaderboard); rows are only moved, never rebuilt, so no run data passes through HTML here.
(function () {
  "use strict";

  function key(row, index) {
    const cell = row.cells[index];
    return cell ? cell.getAttribute("data-value") : null;
  }

  function compare(a, b, type, direction) {
    const missingA = a === null || a === "", missingB = b === null || b === "";
    if (missingA || missingB) {
      return missingA === missingB ? 0 : (missingA ? 1 : -1); // missing values always last
    }
    let order;
    if (type === "text") {
      order = a.localeCompare(b);
    } else {
      order = Number(a) - Number(b);
    }
    return direction === "ascending" ? order : -order;
  }

  function sortTable(table, index, header) {
    const type = header.getAttribute("data-type") || "number";
    const current = header.getAttribute("aria-sort");
    let direction;
    if (current === "descending") {
      direction = "ascending";
    } else if (current === "ascending") {
      direction = "descending";
    } else {
      direction = header.getAttribute("data-first") || (type === "text" ? "ascending" : "descending");
    }
    for (const other of table.tHead.rows[0].cells) {
      other.removeAttribute("aria-sort");
    }
    header.setAttribute("aria-sort", direction);
    for (const body of table.tBodies) {
      const rows = Array.from(body.rows).filter((row) => row.classList.contains("row"));
      const decorated = rows.map((row, position) => [row, key(row, index), position]);
      decorated.sort((x, y) => compare(x[1], y[1], type, direction) || x[2] - y[2]);
      for (const item of decorated) {
        body.appendChild(item[0]);
      }
    }
  }

  function setup(table) {
    const headers = Array.from(table.tHead.rows[0].cells);
    headers.forEach((header, index) => {
      const button = header.querySelector("button");
      if (button) {
        button.addEventListener("click", () => sortTable(table, index, header));
      }
    });
  }

  document.querySelectorAll("table.sortable").forEach(setup);

  // column groups: each checkbox shows or hides its group of the ranking's columns (a class on the table)
  document.querySelectorAll("fieldset.column-groups").forEach((fieldset) => {
    const table = document.getElementById(fieldset.getAttribute("data-table"));
    if (!table) {
      return;
    }
    fieldset.querySelectorAll("input[data-col]").forEach((box) => {
      box.addEventListener("change", () => table.classList.toggle("hide-" + box.getAttribute("data-col"), !box.checked));
    });
  });
})();
