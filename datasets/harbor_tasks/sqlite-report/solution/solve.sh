#!/bin/bash
set -e
cd /app
rm -f sales.db
sqlite3 sales.db < orders.sql
{ echo "region,total"; sqlite3 -csv sales.db "SELECT region, SUM(amount) FROM orders GROUP BY region ORDER BY 2 DESC"; } > report.csv
