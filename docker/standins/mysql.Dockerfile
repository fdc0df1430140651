# A local stand-in for the `mysql` image, for machines that cannot pull it
# (scripts/e2e-swarm): MariaDB from Debian, configured by the same variables
# as the official image (MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD[_FILE],
# MYSQL_ROOT_PASSWORD[_FILE]) and keeping its data in /var/lib/mysql.
ARG BASE_IMAGE=bookstore/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mariadb-server mariadb-client \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* \
 && mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld /var/lib/mysql
COPY docker/standins/mysql-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/mysql
EXPOSE 3306
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mariadbd"]
