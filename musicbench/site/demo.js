// musicbench demo page: click a player to hear the sound the method assigns there.
// Mixture items show one frame per source video: a click on frame k selects source k. Duet items show
// one frame with several players: a click selects the player whose box holds the point (the smallest
// such box), else the player whose box centre is nearest. Run data is only ever set with textContent.
(function () {
  "use strict";

  function playFromStart(audio) {
    audio.currentTime = 0;
    const started = audio.play();
    if (started && typeof started.catch === "function") {
      started.catch(() => {}); // playback refused (no user gesture / no audio device): selection still stands
    }
  }

  function sourceAt(frame, x, y) {
    const fixed = frame.getAttribute("data-source");
    if (fixed !== null) {
      return Number(fixed);
    }
    const players = JSON.parse(frame.getAttribute("data-players") || "[]");
    let best = null;
    for (const player of players) {
      const box = player.box;
      if (box && x >= box[0] && x <= box[0] + box[2] && y >= box[1] && y <= box[1] + box[3]) {
        const area = box[2] * box[3];
        if (best === null || area < best.area) {
          best = { source: player.source, area: area };
        }
      }
    }
    if (best !== null) {
      return best.source;
    }
    let nearest = null;
    for (const player of players) {
      const d = Math.hypot(x - player.point[0], y - player.point[1]);
      if (nearest === null || d < nearest.distance) {
        nearest = { source: player.source, distance: d };
      }
    }
    return nearest === null ? null : nearest.source;
  }

  function drawBoxes(frame) {
    // the players' boxes (ground truth of MUSIC-Synth), outlined; positioned through the CSSOM, which the
    // page's Content-Security-Policy allows (inline style attributes it does not)
    const players = JSON.parse(frame.getAttribute("data-players") || "[]");
    const width = Number(frame.getAttribute("data-width")), height = Number(frame.getAttribute("data-height"));
    if (!width || !height) {
      return;
    }
    for (const player of players) {
      if (!player.box) {
        continue;
      }
      const outline = document.createElement("span");
      outline.className = "box";
      outline.style.left = (100 * player.box[0] / width) + "%";
      outline.style.top = (100 * player.box[1] / height) + "%";
      outline.style.width = (100 * player.box[2] / width) + "%";
      outline.style.height = (100 * player.box[3] / height) + "%";
      frame.appendChild(outline);
    }
  }

  function setup(section) {
    const players = Array.from(section.querySelectorAll("li.player"));
    const audios = players.map((li) => li.querySelector("audio"));
    const mixture = section.querySelector("audio.mixture");
    const status = section.querySelector(".selected");
    const frames = Array.from(section.querySelectorAll(".frame"));
    const allAudio = audios.concat(mixture ? [mixture] : []);

    function stopAll() {
      allAudio.forEach((audio) => audio.pause());
    }

    function select(source, frame, fx, fy) {
      section.setAttribute("data-selected", String(source));
      const label = players[source] ? players[source].querySelector(".label").textContent : "";
      status.textContent = "Selected: " + label;
      players.forEach((li, i) => li.classList.toggle("active", i === source));
      frames.forEach((f) => {
        const own = f.getAttribute("data-source");
        f.classList.toggle("active", own === null ? f === frame : Number(own) === source);
        f.querySelectorAll("img.heat[data-source]").forEach((img) => {
          if (own === null) {
            img.hidden = Number(img.getAttribute("data-source")) !== source;
          }
        });
      });
      if (frame && fx !== null) {
        let marker = frame.querySelector(".marker");
        if (!marker) {
          marker = document.createElement("span");
          marker.className = "marker";
          frame.appendChild(marker);
        }
        marker.style.left = (100 * fx) + "%";
        marker.style.top = (100 * fy) + "%";
      }
      stopAll();
      if (audios[source]) {
        playFromStart(audios[source]);
      }
    }

    frames.forEach((frame) => {
      if (frame.hasAttribute("data-players")) {
        drawBoxes(frame);
      }
      frame.addEventListener("click", (event) => {
        const picture = frame.querySelector("img.picture");
        const rect = picture.getBoundingClientRect();
        if (!rect.width || !rect.height) {
          return;
        }
        const fx = Math.min(Math.max((event.clientX - rect.left) / rect.width, 0), 1);
        const fy = Math.min(Math.max((event.clientY - rect.top) / rect.height, 0), 1);
        const width = Number(frame.getAttribute("data-width")) || picture.naturalWidth;
        const height = Number(frame.getAttribute("data-height")) || picture.naturalHeight;
        const source = sourceAt(frame, fx * width, fy * height);
        if (source !== null) {
          select(source, frame, fx, fy);
        }
      });
    });

    section.querySelectorAll("input.volume").forEach((slider) => {
      const audio = audios[Number(slider.getAttribute("data-source"))];
      const output = slider.parentElement.querySelector("output");
      const apply = () => {
        audio.volume = Math.min(Math.max(Number(slider.value), 0), 1);
        if (output) {
          output.textContent = Math.round(audio.volume * 100) + "%";
        }
      };
      slider.addEventListener("input", apply);
      apply();
    });

    const heatToggle = section.querySelector("input.show-heat");
    if (heatToggle) {
      heatToggle.addEventListener("change", () => {
        frames.forEach((f) => f.classList.toggle("hide-heat", !heatToggle.checked));
      });
    }
    const playAll = section.querySelector("button.play-all");
    if (playAll) {
      playAll.addEventListener("click", () => {
        stopAll();
        audios.forEach(playFromStart); // the sliders remix the sources
      });
    }
    const playMixture = section.querySelector("button.play-mixture");
    if (playMixture && mixture) {
      playMixture.addEventListener("click", () => {
        stopAll();
        playFromStart(mixture);
      });
    }
    const stop = section.querySelector("button.stop");
    if (stop) {
      stop.addEventListener("click", stopAll);
    }
  }

  document.querySelectorAll("section.demo-item").forEach(setup);

  // side by side: another method's estimates of each item under this one's. The other pages' names,
  // folder slugs (file-name-safe) and per-item NSDR come as JSON in data-others; names are set with
  // textContent, and media paths are built only from slugs.
  const chooser = document.querySelector("select.side-by-side");
  if (chooser) {
    const others = JSON.parse(chooser.getAttribute("data-others") || "[]");
    const safe = /^[A-Za-z0-9_-]+$/;
    others.forEach((other, index) => {
      const option = document.createElement("option");
      option.value = String(index);
      option.textContent = other.name;
      chooser.appendChild(option);
    });
    chooser.addEventListener("change", () => {
      const other = chooser.value === "" ? null : others[Number(chooser.value)];
      document.querySelectorAll("section.demo-item").forEach((section) => {
        const box = section.querySelector(".other-method");
        if (!box) {
          return;
        }
        box.replaceChildren();
        const slug = section.getAttribute("data-slug") || "";
        const has = other && safe.test(other.slug) && safe.test(slug) && Object.prototype.hasOwnProperty.call(other.items, slug);
        box.hidden = !other;
        if (!other) {
          return;
        }
        const heading = document.createElement("p");
        heading.className = "other-name";
        const nsdr = has ? other.items[slug] : null;
        heading.textContent = other.name + (has ? (nsdr === null ? "" : ": NSDR " + Number(nsdr).toFixed(2) + " dB")
          : ": no estimate of this item");
        box.appendChild(heading);
        if (!has) {
          return;
        }
        const list = document.createElement("ul");
        list.className = "players other";
        section.querySelectorAll("li.player .label").forEach((label, k) => {
          const li = document.createElement("li");
          const name = document.createElement("span");
          name.className = "label";
          name.textContent = label.textContent;
          const audio = document.createElement("audio");
          audio.className = "other-source";
          audio.controls = true;
          audio.preload = "metadata";
          audio.src = other.slug + "/" + slug + "/source-" + k + ".ogg";
          li.append(name, audio);
          list.appendChild(li);
        });
        box.appendChild(list);
      });
    });
  }
})();
