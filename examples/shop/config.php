<?php
// HTTP
define('HTTP_SERVER', 'http://demo-shop.example/');

// HTTPS
define('HTTPS_SERVER', 'https://Demo-Shop.example/');

// DIR
define('DIR_APPLICATION', '/var/www/demo-shop/catalog/');
define('DIR_SYSTEM', '/var/www/demo-shop/system/');

// DB
define('DB_DRIVER', 'mysqli');
define('DB_HOSTNAME', 'localhost');
define('DB_USERNAME', 'shop');
define('DB_PASSWORD', 'not-a-real-password');
define('DB_DATABASE', 'shop');
define('DB_PREFIX', 'oc_');
