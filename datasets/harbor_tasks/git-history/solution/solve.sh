#!/bin/bash
set -euo pipefail
cd /app/site
ls -la

git init -q -b main .
git config user.name "Site Bot"
git config user.email "bot@example.com"

printf '*.log\n' > .gitignore
git add .gitignore index.html style.css
git commit -q -m "Initial commit"
git tag -a v1.0 -m "First release"

git checkout -q -b feature/about
git add about.html
git commit -q -m "Add about page"

git checkout -q main
sed -i 's/color: #333333;/color: #111111;/' style.css
git commit -q -am "Darken text color"

git merge -q --no-ff -m "Merge branch 'feature/about'" feature/about
git log --graph --oneline --decorate --all
git status --porcelain
